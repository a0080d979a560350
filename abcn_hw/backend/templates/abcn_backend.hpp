// abcn-hw backend glue (not part of the abcn kernel library; copied into each generated project).
//
// Threshold / accumulate units for layers whose integer coefficients C[m][n][o] do not factor as
// a[m][o] * b[n] (the library's abcn::MultiBaseThreshold / MultiBaseAccumulate take a and b).
// Same interface as the library units: XnorMVU / IntMVU call activate(nf, dots[PE][M][N]) once per
// neuron fold. acc = sum_m sum_n c[pe][nf][m][n] * dots[pe][m][n]; thresholds as in the library
// (pos 1: bit = acc >= thr, pos 0: bit = acc <= thr); output words as in the library.
// Requires config.hpp's ABCN_HLS pragma macro.
#ifndef ABCN_BACKEND_HPP
#define ABCN_BACKEND_HPP

namespace abcn_backend {

template <int ACC_W, unsigned M, unsigned N, int C_W, int DW>
inline ap_int<ACC_W> accumulate_c(const ap_int<C_W> (&c)[M][N], const ap_int<DW> (&dots)[M][N]) {
    ABCN_HLS(INLINE);
    ap_int<ACC_W> acc = 0;
    for (unsigned m = 0; m < M; m++) {
        ABCN_HLS(UNROLL);
        for (unsigned n = 0; n < N; n++) {
            ABCN_HLS(UNROLL);
            acc += c[m][n] * dots[m][n];
        }
    }
    return acc;
}

template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned NOUT, int C_W, int ACC_W>
struct MultiBaseThresholdC {
    static_assert(MH % PE == 0, "PE must divide MH");
    static constexpr unsigned NF = MH / PE;
    typedef ap_int<ACC_W> acc_t;
    typedef ap_uint<NOUT * PE> out_t;

    ap_int<C_W> c[PE][NF][M][N];
    ap_int<ACC_W> thr[PE][NF][NOUT];
    ap_uint<1> pos[PE][NF];

    template <int DW>
    out_t activate(unsigned nf, const ap_int<DW> (&dots)[PE][M][N]) const {
        ABCN_HLS(INLINE);
        out_t out = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
            ABCN_HLS(UNROLL);
            const acc_t acc = accumulate_c<ACC_W>(c[pe][nf], dots[pe]);
            for (unsigned j = 0; j < NOUT; j++) {
                ABCN_HLS(UNROLL);
                const bool ge = acc >= thr[pe][nf][j];
                const bool le = acc <= thr[pe][nf][j];
                out[j * PE + pe] = pos[pe][nf] ? ge : le;
            }
        }
        return out;
    }
};

template <unsigned MH, unsigned PE, unsigned M, unsigned N, int C_W, int ACC_W>
struct MultiBaseAccumulateC {
    static_assert(MH % PE == 0, "PE must divide MH");
    static constexpr unsigned NF = MH / PE;
    typedef ap_int<ACC_W> acc_t;
    typedef ap_uint<PE * ACC_W> out_t;

    ap_int<C_W> c[PE][NF][M][N];

    template <int DW>
    out_t activate(unsigned nf, const ap_int<DW> (&dots)[PE][M][N]) const {
        ABCN_HLS(INLINE);
        out_t out = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
            ABCN_HLS(UNROLL);
            const acc_t acc = accumulate_c<ACC_W>(c[pe][nf], dots[pe]);
            out((pe + 1) * ACC_W - 1, pe * ACC_W) = ap_uint<ACC_W>(acc);
        }
        return out;
    }
};

}  // namespace abcn_backend

#endif  // ABCN_BACKEND_HPP
