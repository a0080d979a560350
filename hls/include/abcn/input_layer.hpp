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
#include "sliding_window.hpp"

#if ABCN_CSIM_FAST
#include <cstddef>
#include <cstdint>
#include <cstring>
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
// The C-simulation core of IntMVU, shared by IntMVU_csim (vectors from the input stream) and
// SlidingWindowIntMVU_csim (vectors cut from an image buffer). Input vectors are collected in blocks
// of VB (set(k, x) element k of the next vector, push() after its MW elements; flush() after the
// last); a block's dot products are computed together, then its output words are written vector by
// vector, neuron fold by neuron fold, as the synthesizable loop writes them, the counter advancing
// by SF per word written. Per row (row = o*M + m, o = nf*PE + pe) the weight elements of value +1
// are listed once per kernel call, and per vector
//     dot = 2 * P - S,   P = sum of x[k] over the +1 elements,  S = sum of all x[k],
// summed over the block's vectors at once (vectorised by the compiler) in the unsigned type U of T's
// width: modulo 2^bits(T) every step is exact, and the true dot fits T (T = int16 / int32 / int64
// holds every dot, |dot| <= MW * max|x| < 2^(DW-1)), so the result is the ap_int<DW> code's dot.
// A native activation (csim_act) thresholds the whole block at once. Only local (heap) state:
// reentrant. Never synthesised.
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned IN_BITS,
          bool IN_SIGNED, class TA>
struct IntMVUCsimCore {
    static constexpr unsigned SF = MW / SIMD;
    static constexpr unsigned NF = MH / PE;
    static constexpr unsigned ROWS = MH * M;
    static constexpr unsigned VB = 32;              // vectors per block
    static constexpr int DW = (int)int_dot_bits(MW, IN_BITS, IN_SIGNED);
    static constexpr unsigned WW = SIMD * IN_BITS;  // input word width
    static constexpr unsigned CH = (WW + 63) / 64;  // 64-bit chunks per input word
    typedef typename std::conditional<(DW <= 16), std::int16_t,
        typename std::conditional<(DW <= 32), std::int32_t, std::int64_t>::type>::type T;
    typedef typename std::make_unsigned<T>::type U;
    static constexpr std::uint64_t EMASK = (IN_BITS >= 64) ? ~0ull : ((1ull << IN_BITS) - 1ull);
    typedef csim_act<TA, DW> NAT;

    const TA &act;
    const NAT nat;
    std::vector<unsigned> plus, plus_at;  // the +1 elements k of row r: plus[plus_at[r] .. plus_at[r+1])
    std::vector<U> xs, dots;              // xs[k*VB + v], dots[row*VB + v]: block vector v
    std::vector<unsigned long long> words;  // words[(nf*OC + c)*VB + v]: native activation output
    unsigned nb;                           // vectors in the block

    IntMVUCsimCore(const BinaryWeights<SIMD, PE, M, NF * SF> &weights, const TA &a)
        : act(a), nat(a), plus_at(ROWS + 1), xs((std::size_t)MW * VB), dots((std::size_t)ROWS * VB),
          words((std::size_t)NF * NAT::OC * VB), nb(0) {
        for (unsigned nf = 0; nf < NF; nf++)
            for (unsigned pe = 0; pe < PE; pe++)
                for (unsigned m = 0; m < M; m++) {
                    const unsigned row = (nf * PE + pe) * M + m;
                    plus_at[row] = (unsigned)plus.size();
                    for (unsigned sf = 0; sf < SF; sf++) {
                        const ap_uint<SIMD> w = weights.word(m, pe, nf * SF + sf);
                        for (unsigned s = 0; s < SIMD; s++)
                            if (w[s]) plus.push_back(sf * SIMD + s);
                    }
                }
        plus_at[ROWS] = (unsigned)plus.size();
    }

    // The SIMD pixels of one input word (element s at bits [s*IN_BITS, (s+1)*IN_BITS)) into x[0..SIMD-1].
    static void decode(const ap_uint<WW> &xw, T *x) {
        std::uint64_t chunk[CH + 1];
        chunk[CH] = 0;
        for (unsigned c = 0; c < CH; c++) chunk[c] = csim_field(xw, c * 64, (c * 64 + 64 <= WW) ? 64u : WW - c * 64);
        for (unsigned s = 0; s < SIMD; s++) {
            const unsigned lo = s * IN_BITS, c = lo / 64, b = lo % 64;
            std::uint64_t v = chunk[c] >> b;
            if (b != 0 && b + IN_BITS > 64) v |= chunk[c + 1] << (64 - b);
            v &= EMASK;
            std::int64_t sv = (std::int64_t)v;
            if (IN_SIGNED && ((v >> (IN_BITS - 1)) & 1ull)) sv -= (std::int64_t)(EMASK) + 1;
            x[s] = (T)sv;
        }
    }

    // Element k of the next vector.
    void set(unsigned k, T x) { xs[(std::size_t)k * VB + nb] = (U)x; }

    // The next vector is complete (all MW elements set).
    template <class OUT>
    void push(hls::stream<OUT> &out, IterCounter *counter) {
        if (++nb == VB) flush(out, counter);
    }

    // d[v] += x[v] for the VB vectors of a block: with GNU C vector extensions in 64-byte vectors
    // (g++ left the plain loop scalar after unrolling it), else the plain loop.
    static void add_block(U *d, const U *x) {
#if defined(__GNUC__)
        typedef U V __attribute__((vector_size(64)));
        constexpr unsigned L = 64 / sizeof(U);  // lanes per vector; L divides VB
        for (unsigned i = 0; i < VB; i += L) {
            V a, b;
            std::memcpy(&a, d + i, sizeof a);
            std::memcpy(&b, x + i, sizeof b);
            a += b;
            std::memcpy(d + i, &a, sizeof a);
        }
#else
        for (unsigned v = 0; v < VB; v++) d[v] = (U)(d[v] + x[v]);
#endif
    }

    // The block's dot products, activations and output words.
    template <class OUT>
    void flush(hls::stream<OUT> &out, IterCounter *counter) {
        if (nb == 0) return;
        U sum[VB];
        for (unsigned v = 0; v < VB; v++) sum[v] = 0;
        for (unsigned k = 0; k < MW; k++) add_block(sum, &xs[(std::size_t)k * VB]);
        for (unsigned row = 0; row < ROWS; row++) {
            U p[VB];
            for (unsigned v = 0; v < VB; v++) p[v] = 0;
            for (unsigned i = plus_at[row]; i < plus_at[row + 1]; i++) add_block(p, &xs[(std::size_t)plus[i] * VB]);
            U *d = &dots[(std::size_t)row * VB];
            for (unsigned v = 0; v < VB; v++) d[v] = (U)(2u * p[v] - sum[v]);
        }
        const T *sd = reinterpret_cast<const T *>(dots.data());  // (signed / unsigned views of one type)
        if (NAT::native) {  // the activation in native integers (csim_act), the whole block at once
            for (unsigned nf = 0; nf < NF; nf++)
                nat.template activate_block<VB>(nf, &sd[(std::size_t)nf * PE * M * VB], &words[(std::size_t)nf * NAT::OC * VB]);
            for (unsigned v = 0; v < nb; v++)
                for (unsigned nf = 0; nf < NF; nf++) {
                    out.write(NAT::template word<VB>(&words[(std::size_t)nf * NAT::OC * VB], v));
                    if (counter) counter->iters += SF;  // the synthesizable loop's SF iterations of this word
                }
        } else {
            for (unsigned v = 0; v < nb; v++)
                for (unsigned nf = 0; nf < NF; nf++) {
                    ap_int<DW> d[PE][M][1];
                    for (unsigned pe = 0; pe < PE; pe++)
                        for (unsigned m = 0; m < M; m++) d[pe][m][0] = (long long)sd[((std::size_t)(nf * PE + pe) * M + m) * VB + v];
                    out.write(act.activate(nf, d));
                    if (counter) counter->iters += SF;
                }
        }
        nb = 0;
    }
};

// C-simulation implementation of IntMVU: identical outputs, stream reads/writes and activation calls,
// on plain integers; the counter advances by SF per output word actually written (as XnorMVU_csim).
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned IN_BITS,
          bool IN_SIGNED, class TA>
void IntMVU_csim(hls::stream<ap_uint<SIMD * IN_BITS> > &in, hls::stream<typename TA::out_t> &out,
                 const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights, const TA &act,
                 unsigned reps, IterCounter *counter) {
    typedef IntMVUCsimCore<MW, MH, SIMD, PE, M, IN_BITS, IN_SIGNED, TA> Core;
    Core core(weights, act);
    typename Core::T x[SIMD];
    for (unsigned r = 0; r < reps; r++) {
        // Neuron fold 0 reads the SF words of the vector; its outputs are written after them.
        for (unsigned sf = 0; sf < Core::SF; sf++) {
            Core::decode(in.read(), x);
            for (unsigned s = 0; s < SIMD; s++) core.set(sf * SIMD + s, x[s]);
        }
        core.push(out, counter);
    }
    core.flush(out, counter);
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

#if ABCN_CSIM_FAST
// SlidingWindowIntMVU_csim: C simulation only (never synthesised). A SlidingWindowRect (template
// arguments IFM_H .. PR) whose window stream feeds an IntMVU (MW .. TA), evaluated as one
// convolution over each image: the generated top calls it in the fast view where the two kernels are
// wired back to back (emit.py; the synthesis view and synthesis keep the two calls and the stream
// `mid` between them). For each image the IFM_H*IFM_W*CF
// input words are read and decoded once into a pixel buffer, and each output pixel's window vector
// (order (ky, kx, cf, s), 0 for padding) is cut from it directly instead of passing KH*KW*CF words
// per output pixel through `mid`, which is left untouched (empty, as the two kernels leave it).
// Everything else is what the two calls do: the same reads of `in` and words written to `out`
// (IntMVUCsimCore), the same activation calls, and per kernel one call and the same iterations
// (window generator: the prologue rows read, then per output row max(words it would emit, SH rows of
// words); IntMVU: SF per output word). `images` and `reps` are the two calls' reps arguments; where
// reps is not images*OFM_H*OFM_W or the dots exceed 63 bits it makes the two calls instead.
template <unsigned IFM_H, unsigned IFM_W, unsigned CF, unsigned WORD_W, unsigned KH, unsigned KW, unsigned SH,
          unsigned SW, unsigned PT, unsigned PL, unsigned PB, unsigned PR, unsigned MW, unsigned MH, unsigned SIMD,
          unsigned PE, unsigned M, unsigned IN_BITS, bool IN_SIGNED, class TA>
void SlidingWindowIntMVU_csim(hls::stream<ap_uint<SIMD * IN_BITS> > &in, hls::stream<ap_uint<SIMD * IN_BITS> > &mid,
                              hls::stream<typename TA::out_t> &out,
                              const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights, const TA &act,
                              unsigned images, unsigned reps, IterCounter *swg_counter = nullptr,
                              IterCounter *mvu_counter = nullptr) {
    static_assert(WORD_W == SIMD * IN_BITS && MW == KH * KW * CF * SIMD, "the windows are not the MVU's input vectors");
    constexpr unsigned OFM_H = conv_out_dim(IFM_H, KH, SH, PT, PB);
    constexpr unsigned OFM_W = conv_out_dim(IFM_W, KW, SW, PL, PR);
    typedef IntMVUCsimCore<MW, MH, SIMD, PE, M, IN_BITS, IN_SIGNED, TA> Core;
    typedef typename Core::T T;
    if (Core::DW > 63 || (unsigned long long)reps != (unsigned long long)images * OFM_H * OFM_W) {
        SlidingWindowRect<IFM_H, IFM_W, CF, WORD_W, KH, KW, SH, SW, PT, PL, PB, PR>(in, mid, images, swg_counter);
        IntMVU<MW, MH, SIMD, PE, M, IN_BITS, IN_SIGNED>(mid, out, weights, act, reps, mvu_counter);
        return;
    }
    constexpr unsigned C = CF * SIMD;                       // pixel values per input pixel
    constexpr unsigned ROW_WORDS = IFM_W * CF;              // words per input row
    constexpr unsigned READ_MAX = SH * ROW_WORDS;           // words the generator reads per output row (at most)
    constexpr unsigned PRO_ROWS = (KH - PT < IFM_H) ? (KH - PT) : IFM_H;
    if (swg_counter) swg_counter->calls++;
    if (mvu_counter) mvu_counter->calls++;
    Core core(weights, act);
    std::vector<T> img((std::size_t)IFM_H * IFM_W * C);
    for (unsigned rep = 0; rep < images; rep++) {
        for (unsigned i = 0; i < IFM_H * ROW_WORDS; i++) Core::decode(in.read(), &img[(std::size_t)i * SIMD]);
        if (swg_counter) swg_counter->iters += (unsigned long long)PRO_ROWS * ROW_WORDS;
        for (unsigned oy = 0; oy < OFM_H; oy++) {
            unsigned emitted = 0;  // the window words of this output row
            for (unsigned ox = 0; ox < OFM_W; ox++) {
                unsigned k = 0;  // window element (ky, kx, c)
                for (unsigned ky = 0; ky < KH; ky++) {
                    const int iy = (int)(oy * SH + ky) - (int)PT;
                    const bool row_in = iy >= 0 && iy < (int)IFM_H;
                    for (unsigned kx = 0; kx < KW; kx++, k += C) {
                        const int ix = (int)(ox * SW + kx) - (int)PL;
                        if (row_in && ix >= 0 && ix < (int)IFM_W) {
                            const T *src = &img[((std::size_t)iy * IFM_W + (unsigned)ix) * C];
                            for (unsigned c = 0; c < C; c++) core.set(k + c, src[c]);
                        } else {
                            for (unsigned c = 0; c < C; c++) core.set(k + c, 0);  // a padding word: pixel 0
                        }
                        emitted += CF;
                    }
                }
                core.push(out, mvu_counter);
            }
            if (swg_counter) swg_counter->iters += emitted > READ_MAX ? emitted : READ_MAX;
        }
    }
    core.flush(out, mvu_counter);
}
#endif

} // namespace abcn

#endif // ABCN_INPUT_LAYER_HPP
