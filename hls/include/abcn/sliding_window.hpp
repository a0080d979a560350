// Sliding-window (convolution input) generator with a line buffer.
#ifndef ABCN_SLIDING_WINDOW_HPP
#define ABCN_SLIDING_WINDOW_HPP

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

// Output size along one axis: kernel k, stride s, paddings p0 (before) and p1 (after).
constexpr unsigned conv_out_dim(unsigned ifm, unsigned k, unsigned s, unsigned p0, unsigned p1) {
    return (ifm + p0 + p1 - k) / s + 1;
}
// Symmetric padding p.
constexpr unsigned conv_out_dim(unsigned ifm, unsigned k, unsigned s, unsigned p) {
    return conv_out_dim(ifm, k, s, p, p);
}

// Pipelined-loop iterations (= cycles at II=1) of one SlidingWindowRect call per image.
constexpr unsigned long long sliding_window_rect_iters(unsigned ifm_h, unsigned ifm_w, unsigned cf,
                                                       unsigned kh, unsigned kw, unsigned sh,
                                                       unsigned sw, unsigned pt, unsigned pl,
                                                       unsigned pb, unsigned pr) {
    return (unsigned long long)((kh - pt < ifm_h) ? (kh - pt) : ifm_h) * ifm_w * cf +
           (unsigned long long)conv_out_dim(ifm_h, kh, sh, pt, pb) *
               ((unsigned long long)conv_out_dim(ifm_w, kw, sw, pl, pr) * kh * kw * cf >
                        (unsigned long long)sh * ifm_w * cf
                    ? (unsigned long long)conv_out_dim(ifm_w, kw, sw, pl, pr) * kh * kw * cf
                    : (unsigned long long)sh * ifm_w * cf);
}
constexpr unsigned long long sliding_window_iters(unsigned ifm_h, unsigned ifm_w, unsigned cf,
                                                  unsigned k, unsigned s, unsigned p) {
    return sliding_window_rect_iters(ifm_h, ifm_w, cf, k, k, s, s, p, p, p, p);
}

// SlidingWindowRect: the KH x KW window generator, strides SH/SW, paddings PT (top), PL (left),
// PB (bottom), PR (right) -- the general form of the lowering's Conv/MaxPool attributes.
//
// Generic over the stream word: a pixel is CF consecutive words of WORD_W bits (a "channel
// fold"); the generator never looks inside a word.
//   * bit layers   : WORD_W = N*SIMD, CF = C/SIMD (see README: base-major word layout);
//   * integer input: WORD_W = SIMD*IN_BITS, CF = C/SIMD.
// Padding positions emit the all-zero word: bit 0 in every activation base (the value -1) for bit
// streams, integer 0 for integer streams -- exactly the padding semantics of the lowering.
//
// Input : IFM_H*IFM_W*CF words per image, order (y, x, cf).
// Output: OFM_H*OFM_W*KH*KW*CF words per image, order (oy, ox, ky, kx, cf) major-to-minor, i.e.
//         the window vector of each output pixel in (ky, kx, c) order -- the order XnorMVU
//         consumes (weights must be folded with k = (ky*KW + kx)*C + c).
//
// Line buffer: KH+SH rows of IFM_W*CF words, a ring of rows (input row r in slot r mod (KH+SH)).
// While the window rows of output row oy are emitted, the input rows needed by output row oy+1
// are read in the same pipelined loop (one read and/or one write per cycle), so the stream is
// consumed at the rate it is produced. Input rows that no window covers are still read (and
// dropped), so images stay aligned. Cycles per image: see sliding_window_rect_iters().
template <unsigned IFM_H, unsigned IFM_W, unsigned CF, unsigned WORD_W, unsigned KH, unsigned KW,
          unsigned SH, unsigned SW, unsigned PT, unsigned PL, unsigned PB, unsigned PR>
void SlidingWindowRect(hls::stream<ap_uint<WORD_W> > &in, hls::stream<ap_uint<WORD_W> > &out,
                       unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(KH >= 1 && KW >= 1 && SH >= 1 && SW >= 1, "kernel and stride must be >= 1");
    static_assert(PT < KH && PB < KH && PL < KW && PR < KW, "padding must be smaller than the kernel");
    static_assert(IFM_H + PT + PB >= KH && IFM_W + PL + PR >= KW, "kernel larger than padded input");
    constexpr unsigned OFM_H = conv_out_dim(IFM_H, KH, SH, PT, PB);
    constexpr unsigned OFM_W = conv_out_dim(IFM_W, KW, SW, PL, PR);
    constexpr unsigned ROWS = KH + SH;                  // line-buffer rows
    constexpr unsigned ROW_WORDS = IFM_W * CF;          // words per input row
    constexpr unsigned EMIT = OFM_W * KH * KW * CF;     // words emitted per output row
    constexpr unsigned READ_MAX = SH * ROW_WORDS;       // words read per output row (at most)
    constexpr unsigned ROW_ITERS = EMIT > READ_MAX ? EMIT : READ_MAX;
    constexpr unsigned PRO_ROWS = (KH - PT < IFM_H) ? (KH - PT) : IFM_H;  // rows before output 0

    // One simple dual-port memory: per cycle at most one write (input row being loaded) and one
    // read (window row of the current output row); they never touch the same row.
    ABCN_COUNT_CALL();
#if ABCN_CSIM_FAST
    // C simulation: per image, all IFM_H*IFM_W*CF input words into a plain array, then the windows
    // in the same order (same stream contents; an image is read before its first window is written,
    // which unbounded csim streams allow). The counter advances as the synthesizable loops do: one
    // iteration per prologue word read, then per output row max(words written, SH rows of words).
    {
        std::vector<ap_uint<WORD_W> > img((std::size_t)IFM_H * ROW_WORDS);
        const ap_uint<WORD_W> zero = 0;
        for (unsigned rep = 0; rep < reps; rep++) {
            for (std::size_t i = 0; i < img.size(); i++) img[i] = in.read();
            if (counter) counter->iters += (unsigned long long)PRO_ROWS * ROW_WORDS;
            for (unsigned oy = 0; oy < OFM_H; oy++) {
                unsigned written = 0;
                for (unsigned ox = 0; ox < OFM_W; ox++)
                    for (unsigned ky = 0; ky < KH; ky++) {
                        const int iy = (int)(oy * SH + ky) - (int)PT;
                        const bool row_in = iy >= 0 && iy < (int)IFM_H;
                        for (unsigned kx = 0; kx < KW; kx++) {
                            const int ix = (int)(ox * SW + kx) - (int)PL;
                            const bool in_map = row_in && ix >= 0 && ix < (int)IFM_W;
                            const ap_uint<WORD_W> *src = in_map ? &img[((std::size_t)iy * IFM_W + (unsigned)ix) * CF] : nullptr;
                            for (unsigned cf = 0; cf < CF; cf++) out.write(src ? src[cf] : zero);
                            written += CF;
                        }
                    }
                if (counter) counter->iters += written > READ_MAX ? written : READ_MAX;
            }
        }
        return;
    }
#endif
    ap_uint<WORD_W> buf[ROWS * ROW_WORDS];

    for (unsigned rep = 0; rep < reps; rep++) {
        unsigned wslot = 0, wcol = 0;  // write position: ring row slot and word column
        // Prologue: the input rows of the first window (rows 0 .. KH-1-PT).
        for (unsigned i = 0; i < PRO_ROWS * ROW_WORDS; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = buf inter false
            ABCN_COUNT_ITER();
            buf[wslot * ROW_WORDS + wcol] = in.read();
            if (++wcol == ROW_WORDS) {
                wcol = 0;
                wslot = (wslot + 1 == ROWS) ? 0 : wslot + 1;
            }
        }
        unsigned loaded = PRO_ROWS;                  // input rows read so far
        unsigned rbase = (ROWS - PT % ROWS) % ROWS;  // ring slot of input row oy*SH-PT
        for (unsigned oy = 0; oy < OFM_H; oy++) {
            // rows to have read when this output row is done: those of output row oy+1, or all
            const unsigned want_next = (oy + 1 == OFM_H) ? IFM_H : (oy + 1) * SH + KH - PT;
            const unsigned target = want_next < IFM_H ? want_next : IFM_H;
            const unsigned to_read = (target > loaded ? target - loaded : 0) * ROW_WORDS;
            unsigned ox = 0, ky = 0, kx = 0, cf = 0;  // emit position
            for (unsigned i = 0; i < ROW_ITERS; i++) {
#pragma HLS PIPELINE II = 1
                // The rows read while emitting output row oy were all loaded before this loop and
                // the rows loaded in it (those of output row oy+1) sit in other slots of the ring
                // (KH + SH rows): no read in this loop sees a write of this loop, in the same
                // iteration or another. HLS cannot prove it from the modular slot indices.
#pragma HLS DEPENDENCE variable = buf inter false
#pragma HLS DEPENDENCE variable = buf intra false
                ABCN_COUNT_ITER();
                if (i < to_read) {
                    buf[wslot * ROW_WORDS + wcol] = in.read();
                    if (++wcol == ROW_WORDS) {
                        wcol = 0;
                        wslot = (wslot + 1 == ROWS) ? 0 : wslot + 1;
                    }
                }
                if (i < EMIT) {
                    const int iy = (int)(oy * SH + ky) - (int)PT;
                    const int ix = (int)(ox * SW + kx) - (int)PL;
                    const unsigned rslot = (rbase + ky < ROWS) ? rbase + ky : rbase + ky - ROWS;
                    ap_uint<WORD_W> w = 0;
                    if (iy >= 0 && iy < (int)IFM_H && ix >= 0 && ix < (int)IFM_W)
                        w = buf[rslot * ROW_WORDS + (unsigned)ix * CF + cf];
                    out.write(w);
                    if (++cf == CF) {
                        cf = 0;
                        if (++kx == KW) {
                            kx = 0;
                            if (++ky == KH) {
                                ky = 0;
                                ox++;
                            }
                        }
                    }
                }
            }
            loaded = target > loaded ? target : loaded;
            rbase = (rbase + SH) % ROWS;  // SH < ROWS: a conditional subtract in hardware
        }
    }
}

// SlidingWindow: square K x K window, stride S, symmetric padding P.
template <unsigned IFM_H, unsigned IFM_W, unsigned CF, unsigned WORD_W, unsigned K, unsigned S,
          unsigned P>
void SlidingWindow(hls::stream<ap_uint<WORD_W> > &in, hls::stream<ap_uint<WORD_W> > &out,
                   unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    SlidingWindowRect<IFM_H, IFM_W, CF, WORD_W, K, K, S, S, P, P, P, P>(
        in, out, reps ABCN_COUNTER_ARG(counter));
}

// Convenience wrapper for bit streams: C channels, N activation bases, SIMD channels per word.
template <unsigned IFM_H, unsigned IFM_W, unsigned C, unsigned N, unsigned SIMD, unsigned K,
          unsigned S, unsigned P>
void BitSlidingWindow(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<ap_uint<N * SIMD> > &out,
                      unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    static_assert(C % SIMD == 0, "SIMD must divide the channel count");
    SlidingWindow<IFM_H, IFM_W, C / SIMD, N * SIMD, K, S, P>(in, out, reps ABCN_COUNTER_ARG(counter));
}

// Convenience wrapper for integer pixel streams: C channels of IN_BITS, SIMD channels per word.
template <unsigned IFM_H, unsigned IFM_W, unsigned C, unsigned IN_BITS, unsigned SIMD, unsigned K,
          unsigned S, unsigned P>
void IntSlidingWindow(hls::stream<ap_uint<SIMD * IN_BITS> > &in,
                      hls::stream<ap_uint<SIMD * IN_BITS> > &out, unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    static_assert(C % SIMD == 0, "SIMD must divide the channel count");
    SlidingWindow<IFM_H, IFM_W, C / SIMD, SIMD * IN_BITS, K, S, P>(in, out,
                                                                   reps ABCN_COUNTER_ARG(counter));
}

} // namespace abcn

#endif // ABCN_SLIDING_WINDOW_HPP
