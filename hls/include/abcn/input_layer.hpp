// Integer first-layer unit: integer pixels x binary weight bases, add/subtract only.
#ifndef ABCN_INPUT_LAYER_HPP
#define ABCN_INPUT_LAYER_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"
#include "xnor_mvu.hpp"
#include "multibase_threshold.hpp"

#if ABCN_CSIM_FAST
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>
#endif

namespace abcn {

// Largest |x| of an IN_BITS-bit pixel.
constexpr unsigned long long int_pixel_max(unsigned in_bits, bool in_signed) {
    return in_signed ? pow2ull(in_bits - 1) : pow2ull(in_bits) - 1;
}
// |dot_m| <= MW * max|x|.
constexpr unsigned long long int_dot_max(unsigned mw, unsigned in_bits, bool in_signed) {
    return (unsigned long long)mw * int_pixel_max(in_bits, in_signed);
}
constexpr unsigned int_dot_bits(unsigned mw, unsigned in_bits, bool in_signed) {
    return bits_signed_sym(int_dot_max(mw, in_bits, in_signed));
}

#if ABCN_CSIM_FAST
// C-simulation implementation of IntMVU: identical outputs, stream reads/writes and activation calls,
// on plain integers; the counter advances by SF per output word actually written (as XnorMVU_csim). The weight signs are expanded once per call into masks
// neg[k][row] (row = o*M + m, o = nf*PE + pe; 0 for +1, all ones for -1), so that for each input
// vector the dot products of all MH*M rows are MW passes of  acc[row] += (x[k] ^ neg) - neg  over
// contiguous rows (vectorised by the compiler). Only local (heap) state: reentrant. Never
// synthesised. T (int16 / int32 / int64) holds every pixel, partial sum and dot exactly
// (|partial sums| <= MW * max|x| < 2^(DW-1)), so no wrapping can differ from the ap_int<DW> code.
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned IN_BITS,
          bool IN_SIGNED, class TA>
void IntMVU_csim(hls::stream<ap_uint<SIMD * IN_BITS> > &in, hls::stream<typename TA::out_t> &out,
                 const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights, const TA &act,
                 unsigned reps, IterCounter *counter) {
    constexpr unsigned SF = MW / SIMD;
    constexpr unsigned NF = MH / PE;
    constexpr unsigned ROWS = MH * M;
    constexpr int DW = (int)int_dot_bits(MW, IN_BITS, IN_SIGNED);
    constexpr unsigned WW = SIMD * IN_BITS;       // input word width
    constexpr unsigned CH = (WW + 63) / 64;       // 64-bit chunks per input word
    typedef typename std::conditional<(DW <= 16), std::int16_t,
        typename std::conditional<(DW <= 32), std::int32_t, std::int64_t>::type>::type T;
    constexpr std::uint64_t EMASK = (IN_BITS >= 64) ? ~0ull : ((1ull << IN_BITS) - 1ull);

    std::vector<T> neg((std::size_t)MW * ROWS);
    for (unsigned nf = 0; nf < NF; nf++)
        for (unsigned pe = 0; pe < PE; pe++)
            for (unsigned m = 0; m < M; m++) {
                const unsigned row = (nf * PE + pe) * M + m;
                for (unsigned sf = 0; sf < SF; sf++) {
                    const ap_uint<SIMD> w = weights.word(m, pe, nf * SF + sf);
                    for (unsigned s = 0; s < SIMD; s++) neg[(std::size_t)(sf * SIMD + s) * ROWS + row] = w[s] ? T(0) : T(-1);
                }
            }
    std::vector<T> xv(MW), acc(ROWS);
    typedef csim_act<TA, DW> NAT;
    const NAT nat(act);
    std::uint64_t chunk[CH + 1];
    chunk[CH] = 0;
    for (unsigned r = 0; r < reps; r++) {
        // Neuron fold 0 reads the SF words of the vector; every output is written after them.
        for (unsigned sf = 0; sf < SF; sf++) {
            const ap_uint<WW> xw = in.read();
            for (unsigned c = 0; c < CH; c++) chunk[c] = csim_field(xw, c * 64, (c * 64 + 64 <= WW) ? 64u : WW - c * 64);
            for (unsigned s = 0; s < SIMD; s++) {
                const unsigned lo = s * IN_BITS, c = lo / 64, b = lo % 64;
                std::uint64_t v = chunk[c] >> b;
                if (b != 0 && b + IN_BITS > 64) v |= chunk[c + 1] << (64 - b);
                v &= EMASK;
                std::int64_t sv = (std::int64_t)v;
                if (IN_SIGNED && ((v >> (IN_BITS - 1)) & 1ull)) sv -= (std::int64_t)(EMASK) + 1;
                xv[sf * SIMD + s] = (T)sv;
            }
        }
        T *a = acc.data();
        for (unsigned i = 0; i < ROWS; i++) a[i] = 0;
        for (unsigned k = 0; k < MW; k++) {
            const T xk = xv[k];
            const T *nk = &neg[(std::size_t)k * ROWS];
            for (unsigned i = 0; i < ROWS; i++) a[i] = (T)(a[i] + ((xk ^ nk[i]) - nk[i]));
        }
        for (unsigned nf = 0; nf < NF; nf++) {
            if (NAT::native) {  // the activation in native integers (csim_act)
                out.write(nat.activate(nf, &a[(std::size_t)nf * PE * M]));
                if (counter) counter->iters += SF;
                continue;
            }
            ap_int<DW> dots[PE][M][1];
            for (unsigned pe = 0; pe < PE; pe++)
                for (unsigned m = 0; m < M; m++) dots[pe][m][0] = (long long)a[(nf * PE + pe) * M + m];
            out.write(act.activate(nf, dots));
            if (counter) counter->iters += SF;  // the synthesizable loop's SF iterations of this word
        }
    }
}
#endif

// IntMVU: dot_m[o] = sum_k x[k] * (B_m[o][k] ? +1 : -1) for integer pixels x, handed to the
// activation TA as dots[PE][M][1] (i.e. N = 1; use MultiBaseThreshold with N = 1, b = {1}).
// Each product is a conditional negation and the SIMD terms go through an adder tree: no
// multipliers.
//
//   MW   input elements per vector (K*K*C);  SIMD | MW;  PE | MH
//   IN_BITS, IN_SIGNED  pixel format (e.g. 8, false for uint8 images)
// Input : SF = MW/SIMD words of SIMD*IN_BITS bits per vector: element s at bits
//         [s*IN_BITS, (s+1)*IN_BITS) (the IntSlidingWindow output for SIMD | C).
// Weights: BinaryWeights as for XnorMVU. Output: NF words TA::out_t per vector.
// reps = number of vectors (pixels x images).
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned IN_BITS,
          bool IN_SIGNED, class TA>
void IntMVU(hls::stream<ap_uint<SIMD * IN_BITS> > &in, hls::stream<typename TA::out_t> &out,
            const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights, const TA &act,
            unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(MW % SIMD == 0, "SIMD must divide MW");
    static_assert(MH % PE == 0, "PE must divide MH");
    static_assert(IN_BITS >= 1 && IN_BITS <= 32, "IN_BITS out of range");
    constexpr unsigned SF = MW / SIMD;
    constexpr unsigned NF = MH / PE;
    constexpr int DW = (int)int_dot_bits(MW, IN_BITS, IN_SIGNED);
    // every partial sum, |sum| <= MW * max|x|, fits the 64-bit C integers of the loop below
    static_assert(int_dot_max(MW, IN_BITS, IN_SIGNED) < (1ull << 63), "dot products beyond 63 bits");

    ap_uint<SIMD * IN_BITS> inbuf[SF];
    ap_int<DW> acc[PE][M];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 0
    ABCN_COUNT_CALL();
#if ABCN_CSIM_FAST
    // C simulation: the same stream order, activation calls and counts on native integers
    // (bit-exact; dots wider than 63 bits, never met in practice, keep the ap_int code).
    if (DW <= 63) {
        IntMVU_csim<MW, MH, SIMD, PE, M, IN_BITS, IN_SIGNED>(in, out, weights, act,
                                                             reps ABCN_COUNTER_ARG(counter));
        return;
    }
#endif

    // One flat pipelined loop over all vectors (no pipeline flush between output pixels).
    const unsigned long long total = (unsigned long long)reps * NF * SF;
    unsigned sf = 0, nf = 0, tile = 0;
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
        // inbuf[sf] is written in neuron fold 0 and read back SF iterations later (fold 1, and the
        // next vector's fold 0 overwrites it SF iterations after the last read)
#pragma HLS DEPENDENCE variable = inbuf inter RAW distance = SF true
        ABCN_COUNT_ITER();
        ap_uint<SIMD * IN_BITS> xw;
        if (nf == 0) {
            xw = in.read();
            inbuf[sf] = xw;
        } else {
            xw = inbuf[sf];
        }
        // The pixels, then per (pe, m) the SIMD conditional negations and their adder tree, in C
        // integers (ap_int arithmetic costs tens of ns per operation in C simulation): |x| < 2^32 and
        // |sum| <= SIMD * max|x| fit 64 bits, and only the sum's low DW bits are kept (acc is
        // ap_int<DW>, the loop-carried state), so every adder bit above DW drives nothing and is
        // removed in synthesis (hls/README.md, "Integer first layer").
        long long x[SIMD];
#pragma HLS ARRAY_PARTITION variable = x complete dim = 0
        for (unsigned s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
            const unsigned long long raw = field_u64(xw, s * IN_BITS, IN_BITS);
            const bool negative = IN_SIGNED && ((raw >> (IN_BITS - 1)) & 1ull);
            x[s] = negative ? (long long)raw - (long long)(1ull << (IN_BITS - 1)) * 2 : (long long)raw;
        }
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            for (unsigned m = 0; m < M; m++) {
#pragma HLS UNROLL
                const ap_uint<SIMD> w = weights.word(m, pe, tile);
                long long sum = 0;
                for (unsigned s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
                    sum += field_u64(w, s, 1) ? x[s] : -x[s];
                }
                acc[pe][m] = ap_int<DW>((sf == 0 ? 0ll : acc[pe][m].to_int64()) + sum);
            }
        }
        tile++;
        if (++sf == SF) {
            ap_int<DW> dots[PE][M][1];
#pragma HLS ARRAY_PARTITION variable = dots complete dim = 0
            for (unsigned pe = 0; pe < PE; pe++)
                for (unsigned m = 0; m < M; m++) {
#pragma HLS UNROLL
                    dots[pe][m][0] = acc[pe][m];
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

#endif // ABCN_INPUT_LAYER_HPP
