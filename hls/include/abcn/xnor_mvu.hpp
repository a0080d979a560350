// XNOR-popcount matrix-vector unit (multi-base), folded by PE and SIMD.
#ifndef ABCN_XNOR_MVU_HPP
#define ABCN_XNOR_MVU_HPP

// g++ < 13 cannot silence -Wunknown-pragmas (the '#pragma HLS' lines) for a region, so in C
// simulation this header is treated as a system header; the test-suite also builds every kernel
// with -DABCN_NO_SYSTEM_HEADER -Wall -Wextra -Werror -Wno-unknown-pragmas (ap_types via -isystem)
// to keep the library itself warning-clean.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"

namespace abcn {

// |dot_mn| <= MW for a binary dot product of length MW.
constexpr unsigned long long xnor_dot_max(unsigned mw) { return mw; }
// Signed width of dot_mn = 2*popcount - MW in [-MW, MW].
constexpr unsigned xnor_dot_bits(unsigned mw) { return bits_signed_sym(mw); }

// Binary weights of M weight bases, folded for PE and SIMD.
//   w[m][pe][nf*SF + sf] bit s  =  B_m[o][k]  with  o = nf*PE + pe,  k = sf*SIMD + s,
//   bit 1 = +1, bit 0 = -1; SF = MW/SIMD, NF = MH/PE, TILES = NF*SF.
// For HLS, partition w completely in dims 1 and 2 at the top level (one ROM per (m, pe)).
template <unsigned SIMD, unsigned PE, unsigned M, unsigned TILES>
struct BinaryWeights {
    ap_uint<SIMD> w[M][PE][TILES];
};

#if ABCN_CSIM_FAST
// C-simulation implementation of XnorMVU: identical results, loop structure and iteration count,
// on uint64 chunks (weights converted once per call into a static cache: not reentrant across
// threads). Never compiled for synthesis.
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned N, class TA>
void XnorMVU_csim(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<typename TA::out_t> &out,
                  const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights,
                  const TA &act, unsigned reps, IterCounter *counter) {
    constexpr unsigned SF = MW / SIMD;
    constexpr unsigned NF = MH / PE;
    constexpr unsigned TILES = NF * SF;
    constexpr unsigned CH = (SIMD + 63) / 64;  // 64-bit chunks per SIMD slice
    constexpr int DW = (int)xnor_dot_bits(MW);
    constexpr unsigned long long LAST_MASK =
        (SIMD % 64 == 0) ? ~0ull : ((1ull << (SIMD % 64)) - 1ull);
    static unsigned long long wc[TILES][PE][M][CH];
    for (unsigned t = 0; t < TILES; t++)
        for (unsigned pe = 0; pe < PE; pe++)
            for (unsigned m = 0; m < M; m++)
                for (unsigned c = 0; c < CH; c++) {
                    const unsigned hi = (c * 64 + 63 < SIMD - 1) ? c * 64 + 63 : SIMD - 1;
                    wc[t][pe][m][c] = ap_uint<64>(weights.w[m][pe][t](hi, c * 64)).to_uint64();
                }
    static unsigned long long xb[SF][N][CH];
    unsigned pc[PE][M][N];
    const unsigned long long total = (unsigned long long)reps * NF * SF;
    unsigned sf = 0, nf = 0, tile = 0;
    for (unsigned long long i = 0; i < total; i++) {
        if (counter) counter->iters++;
        if (nf == 0) {
            const ap_uint<N * SIMD> x = in.read();
            for (unsigned n = 0; n < N; n++)
                for (unsigned c = 0; c < CH; c++) {
                    const unsigned lo = n * SIMD + c * 64;
                    const unsigned hi = (c * 64 + 63 < SIMD - 1) ? lo + 63 : n * SIMD + SIMD - 1;
                    xb[sf][n][c] = ap_uint<64>(x(hi, lo)).to_uint64();
                }
        }
        for (unsigned pe = 0; pe < PE; pe++)
            for (unsigned m = 0; m < M; m++) {
                const unsigned long long *w = wc[tile][pe][m];
                for (unsigned n = 0; n < N; n++) {
                    const unsigned long long *x = xb[sf][n];
                    unsigned cnt = 0;
                    for (unsigned c = 0; c + 1 < CH; c++) cnt += (unsigned)__builtin_popcountll(~(w[c] ^ x[c]));
                    cnt += (unsigned)__builtin_popcountll(~(w[CH - 1] ^ x[CH - 1]) & LAST_MASK);
                    pc[pe][m][n] = (sf == 0 ? 0u : pc[pe][m][n]) + cnt;
                }
            }
        tile++;
        if (++sf == SF) {
            ap_int<DW> dots[PE][M][N];
            for (unsigned pe = 0; pe < PE; pe++)
                for (unsigned m = 0; m < M; m++)
                    for (unsigned n = 0; n < N; n++) dots[pe][m][n] = 2 * (long long)pc[pe][m][n] - (long long)MW;
            out.write(act.activate(nf, dots));
            sf = 0;
            if (++nf == NF) {
                nf = 0;
                tile = 0;
            }
        }
    }
}
#endif


// XnorMVU: for every input vector (one output pixel's window, MW bits per activation base) and
// every output channel o, the M*N dot products
//     dot_mn[o] = 2*popcount(XNOR(x_n, B_m[o])) - MW
// handed to the activation TA (MultiBaseThreshold, MultiBaseAccumulate or DotPassThrough) as
// ap_int dots[PE][M][N] once per neuron fold.
//
//   MW   bits per base of the input vector (K*K*C for a conv, the flattened size for an FC)
//   MH   output channels;  SIMD | MW;  PE | MH
//   M, N weight bases, activation bases
// Input : SF = MW/SIMD words of N*SIMD bits per vector (base-major: bit n*SIMD + s = base n,
//         element sf*SIMD + s), i.e. the SlidingWindow output for SIMD | C.
// Output: NF = MH/PE words TA::out_t per vector. reps = number of vectors (pixels x images).
// Schedule: one pipelined loop of NF*SF iterations (II=1) per vector; the input vector is read
// during the first neuron fold and replayed from a SF-word buffer for the others.
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned N, class TA>
void XnorMVU(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<typename TA::out_t> &out,
             const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights, const TA &act,
             unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(MW % SIMD == 0, "SIMD must divide MW");
    static_assert(MH % PE == 0, "PE must divide MH");
    constexpr unsigned SF = MW / SIMD;
    constexpr unsigned NF = MH / PE;
    constexpr int PC_W = (int)bits_unsigned(MW);
    constexpr int DW = (int)xnor_dot_bits(MW);

    ABCN_COUNT_CALL();
#if ABCN_CSIM_FAST
    // C simulation: the same schedule and counts on native 64-bit words (bit-exact).
    XnorMVU_csim<MW, MH, SIMD, PE, M, N>(in, out, weights, act, reps ABCN_COUNTER_ARG(counter));
    return;
#endif
    ap_uint<N * SIMD> inbuf[SF];
    ap_uint<PC_W> pc[PE][M][N];
#pragma HLS ARRAY_PARTITION variable = pc complete dim = 0

    // One flat pipelined loop over all vectors (no pipeline flush between output pixels).
    const unsigned long long total = (unsigned long long)reps * NF * SF;
    unsigned sf = 0, nf = 0, tile = 0;
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
        ABCN_COUNT_ITER();
        ap_uint<N * SIMD> x;
        if (nf == 0) {
            x = in.read();
            inbuf[sf] = x;
        } else {
            x = inbuf[sf];
        }
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            for (unsigned m = 0; m < M; m++) {
#pragma HLS UNROLL
                const ap_uint<SIMD> w = weights.w[m][pe][tile];
                for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                    const ap_uint<SIMD> xn = x((n + 1) * SIMD - 1, n * SIMD);
                    const ap_uint<SIMD> xnor = ~(w ^ xn);
                    const ap_uint<PC_W> prev = (sf == 0) ? ap_uint<PC_W>(0) : pc[pe][m][n];
                    pc[pe][m][n] = prev + popcount<SIMD>(xnor);
                }
            }
        }
        tile++;
        if (++sf == SF) {
            ap_int<DW> dots[PE][M][N];
#pragma HLS ARRAY_PARTITION variable = dots complete dim = 0
            for (unsigned pe = 0; pe < PE; pe++)
                for (unsigned m = 0; m < M; m++)
                    for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                        const ap_int<DW + 1> twice = ap_int<DW + 1>(pc[pe][m][n]) << 1;
                        dots[pe][m][n] = twice - ap_int<DW + 1>(MW);
                    }
            out.write(act.activate(nf, dots));
            sf = 0;
            if (++nf == NF) {
                nf = 0;
                tile = 0;
            }
        }
    }
}

} // namespace abcn

#endif // ABCN_XNOR_MVU_HPP
