// Multi-base threshold unit: M*N dot products -> one integer accumulator -> N' activation bits.
#ifndef ABCN_MULTIBASE_THRESHOLD_HPP
#define ABCN_MULTIBASE_THRESHOLD_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"

#if ABCN_CSIM_FAST
#include <cstddef>
#include <vector>
#endif

namespace abcn {

// Largest |acc| of  acc = sum_m sum_n a[m] * b[n] * dot_mn  with |dot_mn| <= DOT_MAX and
// a, b two's-complement integers of A_W and B_W bits.
constexpr unsigned long long mb_acc_max(unsigned M, unsigned N, unsigned long long dot_max,
                                        unsigned a_w, unsigned b_w) {
    return (unsigned long long)M * N * dot_max * signed_mag(a_w) * signed_mag(b_w);
}

// Accumulator width: holds -(acc_max+1) .. acc_max+1, so thresholds clipped to that range fit.
constexpr unsigned mb_acc_bits(unsigned M, unsigned N, unsigned long long dot_max, unsigned a_w,
                               unsigned b_w) {
    return bits_signed_sym(mb_acc_max(M, N, dot_max, a_w, b_w));
}

// acc = sum_m sum_n a[m] * b[n] * dots[m][n] for one output channel.
// a and b are small signed integers; HLS builds each product from a narrow LUT multiplier, or
// from shift-adds when the coefficient is a compile-time constant (e.g. b with N == 1, or
// power-of-two scale grids). No DSP is needed at these widths.
#if ABCN_CSIM_FAST
// C simulation: the accumulator below in native 64-bit arithmetic, wrapped to ACC_W bits like the
// ap_int sum; exact when mb_native_ok (every product and the sum of at most 2^8 terms fit 63 bits).
constexpr bool mb_native_ok(int acc_w, int a_w, int b_w, int dw) { return acc_w <= 64 && a_w + b_w + dw + 8 <= 63; }

template <int ACC_W, unsigned M, unsigned N, int A_W, int B_W, int DW>
inline long long mb_accumulate_native(const ap_int<A_W> (&a)[M], const ap_int<B_W> (&b)[N],
                                      const ap_int<DW> (&dots)[M][N]) {
    long long sum = 0;
    for (unsigned m = 0; m < M; m++) {
        const long long am = a[m].to_int64();
        for (unsigned n = 0; n < N; n++) sum += am * b[n].to_int64() * dots[m][n].to_int64();
    }
    const unsigned sh = 64 - (unsigned)ACC_W;
    return (long long)((unsigned long long)sum << sh) >> sh;
}
#endif

template <int ACC_W, unsigned M, unsigned N, int A_W, int B_W, int DW>
inline ap_int<ACC_W> mb_accumulate(const ap_int<A_W> (&a)[M], const ap_int<B_W> (&b)[N],
                                   const ap_int<DW> (&dots)[M][N]) {
#pragma HLS INLINE
#if ABCN_CSIM_FAST
    if (mb_native_ok(ACC_W, A_W, B_W, DW)) return ap_int<ACC_W>(mb_accumulate_native<ACC_W>(a, b, dots));
#endif
    ap_int<ACC_W> acc = 0;
    for (unsigned m = 0; m < M; m++) {
#pragma HLS UNROLL
        for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
            const ap_int<A_W + B_W> ab = a[m] * b[n];
            acc += ab * dots[m][n];
        }
    }
    return acc;
}

// MultiBaseThreshold: the activation ("threshold unit") of a binary ABC layer.
//
//   MH    output channels, PE channels computed in parallel (NF = MH/PE folds)
//   M, N  weight bases and input activation bases
//   NOUT  activation bases of the next layer (output bits per channel)
//   DOT_MAX  bound on |dot_mn| (MW for XnorMVU, see int_dot_max for IntMVU)
//   A_W, B_W widths of the signed coefficients a and b; ACC_W the accumulator width (default: just
//            wide enough, mb_acc_bits)
//
// Channel o = nf*PE + pe. Parameters (a plain aggregate, so generated code can brace-initialise
// it as a const global):
//   a[pe][nf][m]      coefficient of weight base m for channel o
//   b[n]              coefficient of activation base n (shared by the layer)
//   thr[pe][nf][j]    threshold of output base j for channel o (clip to +-(ACC_MAX+1))
//   pos[pe][nf]       1: out_j = acc >= thr_j ; 0: out_j = acc <= thr_j  (dir <= 0)
// Output word (NOUT*PE bits): bit j*PE + pe = output base j of channel nf*PE+pe (base-major).
// For HLS, partition a, thr and pos completely in dim 1 (PE) at the top level.
template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned NOUT,
          unsigned long long DOT_MAX, int A_W, int B_W,
          int ACC_W = (int)mb_acc_bits(M, N, DOT_MAX, A_W, B_W)>
struct MultiBaseThreshold {
    static_assert(MH % PE == 0, "PE must divide MH");
    static constexpr unsigned NF = MH / PE;
    static constexpr unsigned long long ACC_MAX = mb_acc_max(M, N, DOT_MAX, A_W, B_W);
    typedef ap_int<ACC_W> acc_t;
    typedef ap_uint<NOUT * PE> out_t;

    ap_int<A_W> a[PE][NF][M];
    ap_int<B_W> b[N];
    ap_int<ACC_W> thr[PE][NF][NOUT];
    ap_uint<1> pos[PE][NF];

    template <int DW>
    out_t activate(unsigned nf, const ap_int<DW> (&dots)[PE][M][N]) const {
#pragma HLS INLINE
#if ABCN_CSIM_FAST
        // C simulation: native integers and a 64-bit output word (bit-exact, see mb_accumulate)
        if (NOUT * PE <= 64 && mb_native_ok(ACC_W, A_W, B_W, DW)) {
            unsigned long long bits = 0;
            for (unsigned pe = 0; pe < PE; pe++) {
                const long long acc = mb_accumulate_native<ACC_W>(a[pe][nf], b, dots[pe]);
                const bool p = pos[pe][nf] != 0;
                for (unsigned j = 0; j < NOUT; j++) {
                    const long long th = thr[pe][nf][j].to_int64();
                    const bool bit = p ? (acc >= th) : (acc <= th);
                    bits |= (unsigned long long)bit << (j * PE + pe);
                }
            }
            return out_t(bits);
        }
#endif
        out_t out = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            const acc_t acc = mb_accumulate<ACC_W>(a[pe][nf], b, dots[pe]);
            for (unsigned j = 0; j < NOUT; j++) {
#pragma HLS UNROLL
                const bool ge = acc >= thr[pe][nf][j];
                const bool le = acc <= thr[pe][nf][j];
                out[j * PE + pe] = pos[pe][nf] ? ge : le;
            }
        }
        return out;
    }
};

// C++14: out-of-class definitions of the static constexpr members (needed if odr-used).
template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned NOUT,
          unsigned long long DOT_MAX, int A_W, int B_W, int ACC_W>
constexpr unsigned MultiBaseThreshold<MH, PE, M, N, NOUT, DOT_MAX, A_W, B_W, ACC_W>::NF;
template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned NOUT,
          unsigned long long DOT_MAX, int A_W, int B_W, int ACC_W>
constexpr unsigned long long MultiBaseThreshold<MH, PE, M, N, NOUT, DOT_MAX, A_W, B_W, ACC_W>::ACC_MAX;

// MultiBaseAccumulate: the activation of the final (logits) layer -- no threshold, the integer
// accumulator acc[o] is the output (the float scale/bias is applied after the accelerator).
// Parameters as in MultiBaseThreshold (a, b). Output word (PE*ACC_W bits): bits
// [pe*ACC_W, (pe+1)*ACC_W) = acc of channel nf*PE+pe, two's complement.
template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned long long DOT_MAX, int A_W,
          int B_W, int ACC_W = (int)mb_acc_bits(M, N, DOT_MAX, A_W, B_W)>
struct MultiBaseAccumulate {
    static_assert(MH % PE == 0, "PE must divide MH");
    static constexpr unsigned NF = MH / PE;
    static constexpr unsigned long long ACC_MAX = mb_acc_max(M, N, DOT_MAX, A_W, B_W);
    typedef ap_int<ACC_W> acc_t;
    typedef ap_uint<PE * ACC_W> out_t;

    ap_int<A_W> a[PE][NF][M];
    ap_int<B_W> b[N];

    template <int DW>
    out_t activate(unsigned nf, const ap_int<DW> (&dots)[PE][M][N]) const {
#pragma HLS INLINE
        out_t out = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            const acc_t acc = mb_accumulate<ACC_W>(a[pe][nf], b, dots[pe]);
            out((pe + 1) * ACC_W - 1, pe * ACC_W) = ap_uint<ACC_W>(acc);
        }
        return out;
    }
};

template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned long long DOT_MAX, int A_W,
          int B_W, int ACC_W>
constexpr unsigned MultiBaseAccumulate<MH, PE, M, N, DOT_MAX, A_W, B_W, ACC_W>::NF;
template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned long long DOT_MAX, int A_W,
          int B_W, int ACC_W>
constexpr unsigned long long MultiBaseAccumulate<MH, PE, M, N, DOT_MAX, A_W, B_W, ACC_W>::ACC_MAX;

#if ABCN_CSIM_FAST
// csim_act<TA>: the activation TA in native integers, for the C-simulation MVUs (never synthesised).
// Built once per MVU call from TA's parameters; activate_block<VB>(nf, dots, words) takes the fold's
// dots of VB vectors as a plain array dots[((pe*M + m)*N + n)*VB + v] (vector index minor) and
// leaves in words[c*VB + v] (c < OC, 64-bit chunks) the bits of the word TA::activate returns on the
// ap_int dots of vector v; word<VB>(words, v) is that word. The products a[m]*b[n] are folded into
// one coefficient per (channel, m, n), the sum runs in 64-bit integers and is wrapped to ACC_W bits
// like the ap_int accumulator, lane by lane over the block (the compiler vectorises over v).
// `native` is false where that is not exact (mb_native_ok) or for an activation without such a form
// (the MVU then calls TA::activate per vector).
template <class TA, int DW>
struct csim_act {
    static constexpr bool native = false;
    static constexpr unsigned OC = 1;
    explicit csim_act(const TA &) {}
    template <unsigned VB, class D>
    void activate_block(unsigned, const D *, unsigned long long *) const {}
    template <unsigned VB>
    static typename TA::out_t word(const unsigned long long *, unsigned) { return typename TA::out_t(0); }
};

template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned NOUT,
          unsigned long long DOT_MAX, int A_W, int B_W, int ACC_W, int DW>
struct csim_act<MultiBaseThreshold<MH, PE, M, N, NOUT, DOT_MAX, A_W, B_W, ACC_W>, DW> {
    typedef MultiBaseThreshold<MH, PE, M, N, NOUT, DOT_MAX, A_W, B_W, ACC_W> TA;
    static constexpr unsigned NF = MH / PE;
    static constexpr unsigned OC = (NOUT * PE + 63) / 64;  // 64-bit chunks per output word
    static constexpr bool native = mb_native_ok(ACC_W, A_W, B_W, DW);
    // per fold nf: coef[((nf*PE + pe)*M + m)*N + n], thr[(nf*PE + pe)*NOUT + j], pos[nf*PE + pe]
    std::vector<long long> coef, thr;
    std::vector<unsigned char> pos;
    explicit csim_act(const TA &t) : coef((std::size_t)MH * M * N), thr((std::size_t)MH * NOUT), pos(MH) {
        for (unsigned nf = 0; nf < NF; nf++)
            for (unsigned pe = 0; pe < PE; pe++) {
                const unsigned o = nf * PE + pe;
                for (unsigned m = 0; m < M; m++)
                    for (unsigned n = 0; n < N; n++)
                        coef[(o * M + m) * N + n] = t.a[pe][nf][m].to_int64() * t.b[n].to_int64();
                for (unsigned j = 0; j < NOUT; j++) thr[o * NOUT + j] = t.thr[pe][nf][j].to_int64();
                pos[o] = t.pos[pe][nf] != 0;
            }
    }
    template <unsigned VB, class D>
    void activate_block(unsigned nf, const D *dots, unsigned long long *words) const {
        const unsigned sh = 64 - (unsigned)ACC_W;
        for (unsigned i = 0; i < OC * VB; i++) words[i] = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
            const unsigned o = nf * PE + pe;
            const long long *c = &coef[o * M * N];
            long long acc[VB];
            for (unsigned v = 0; v < VB; v++) acc[v] = 0;
            for (unsigned k = 0; k < M * N; k++) {
                const long long ck = c[k];
                const D *d = &dots[(pe * M * N + k) * VB];
                for (unsigned v = 0; v < VB; v++) acc[v] += ck * (long long)d[v];
            }
            for (unsigned v = 0; v < VB; v++) acc[v] = (long long)((unsigned long long)acc[v] << sh) >> sh;
            for (unsigned j = 0; j < NOUT; j++) {  // output base j of channel o: bit j*PE + pe
                const long long th = thr[o * NOUT + j];
                const unsigned at = j * PE + pe;
                unsigned long long *w = &words[(at / 64) * VB];
                if (pos[o]) {
                    for (unsigned v = 0; v < VB; v++) w[v] |= (unsigned long long)(acc[v] >= th) << (at % 64);
                } else {
                    for (unsigned v = 0; v < VB; v++) w[v] |= (unsigned long long)(acc[v] <= th) << (at % 64);
                }
            }
        }
    }
    template <unsigned VB>
    static typename TA::out_t word(const unsigned long long *words, unsigned v) {
        unsigned long long ch[OC];
        for (unsigned c = 0; c < OC; c++) ch[c] = words[c * VB + v];
        return csim_store_chunks<(int)(NOUT * PE)>(ch);
    }
};
#endif

// DotPassThrough: emits the raw M*N dot products (for testing the MVU alone, or for feeding a
// separate MultiBaseThresholdStream). Output word (PE*M*N*DW bits): element (pe, m, n) at bits
// [((pe*M + m)*N + n)*DW, +DW), two's complement.
template <unsigned PE, unsigned M, unsigned N, int DW>
struct DotPassThrough {
    typedef ap_uint<PE * M * N * DW> out_t;
    template <int DW_IN>
    out_t activate(unsigned, const ap_int<DW_IN> (&dots)[PE][M][N]) const {
#pragma HLS INLINE
        static_assert(DW_IN <= DW, "DotPassThrough: dot width too small");
        out_t out = 0;
        for (unsigned pe = 0; pe < PE; pe++)
            for (unsigned m = 0; m < M; m++)
                for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                    const unsigned lo = ((pe * M + m) * N + n) * DW;
                    out(lo + DW - 1, lo) = ap_uint<DW>(ap_int<DW>(dots[pe][m][n]));
                }
        return out;
    }
};

// MultiBaseThresholdStream: the threshold unit as a separate streaming kernel.
// Input : words of PE*M*N*DW bits in the DotPassThrough layout, NF = MH/PE words per vector.
// Output: one TA::out_t per input word. reps = number of vectors (output pixels x images).
// TA is MultiBaseThreshold or MultiBaseAccumulate with the same PE, M, N.
template <unsigned MH, unsigned PE, unsigned M, unsigned N, int DW, class TA>
void MultiBaseThresholdStream(hls::stream<ap_uint<PE * M * N * DW> > &in,
                              hls::stream<typename TA::out_t> &out, const TA &act,
                              unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(MH % PE == 0, "PE must divide MH");
    constexpr unsigned NF = MH / PE;
    ABCN_COUNT_CALL();
    const unsigned long long total = (unsigned long long)reps * NF;
    unsigned nf = 0;
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
        ABCN_COUNT_ITER();
        const ap_uint<PE * M * N * DW> w = in.read();
        ap_int<DW> dots[PE][M][N];
#pragma HLS ARRAY_PARTITION variable = dots complete dim = 0
        for (unsigned pe = 0; pe < PE; pe++)
            for (unsigned m = 0; m < M; m++)
                for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                    const unsigned lo = ((pe * M + m) * N + n) * DW;
                    dots[pe][m][n] = ap_int<DW>(w(lo + DW - 1, lo));
                }
        out.write(act.activate(nf, dots));
        nf = (nf + 1 == NF) ? 0 : nf + 1;
    }
}

} // namespace abcn

#endif // ABCN_MULTIBASE_THRESHOLD_HPP
