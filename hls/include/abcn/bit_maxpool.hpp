// Max-pool on activation bits: OR over the pool window.
#ifndef ABCN_BIT_MAXPOOL_HPP
#define ABCN_BIT_MAXPOOL_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"
#include "sliding_window.hpp"

namespace abcn {

// BitMaxPool: POOL x POOL window, stride POOL, no padding, floor mode (ONNX ceil_mode=0): trailing
// rows/columns that no window covers are read and dropped.
// With bit 1 = +1 and bit 0 = -1, the max of +-1 values is the OR of their bits, in every
// activation base independently; since each output bit is a non-decreasing function of the
// accumulator (threshold with pos=1), maxpool(threshold(acc)) == threshold(maxpool(acc)) exactly.
// Generic over the word (WORD_W = N*SIMD, CF = C/SIMD): a pixel is CF words, ORed bitwise.
// Input : IFM_H*IFM_W*CF words per image (y, x, cf). Output: (IFM_H/POOL)*(IFM_W/POOL)*CF words
// per image (oy, ox, cf). One pipelined loop of IFM_H*IFM_W*CF iterations per image; buffers:
// one output row (OFM_W*CF words) and CF registers.
template <unsigned IFM_H, unsigned IFM_W, unsigned CF, unsigned WORD_W, unsigned POOL>
void BitMaxPool(hls::stream<ap_uint<WORD_W> > &in, hls::stream<ap_uint<WORD_W> > &out,
                unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(POOL >= 1 && POOL <= IFM_H && POOL <= IFM_W, "bad pool size");
    constexpr unsigned OFM_H = IFM_H / POOL;
    constexpr unsigned OFM_W = IFM_W / POOL;
    // win: OR over the columns of the current window within the current row (registers, one
    // word per channel fold); rowacc: OR over the finished rows of each window of the current
    // pool row band (memory, read and written once per window and row, so consecutive
    // iterations never access the same address).
    ap_uint<WORD_W> win[CF];
#pragma HLS ARRAY_PARTITION variable = win complete dim = 1
    ap_uint<WORD_W> rowacc[OFM_W * CF];
    // rowacc[ox*CF + cf] is read and written in one iteration and next touched one input row
    // (IFM_W*CF iterations) later: a true dependence of that distance (>= 2), stated for HLS,
    // which cannot derive it from the running indices.
    constexpr unsigned ROWACC_DIST = IFM_W * CF;
    (void)ROWACC_DIST;  // read by the DEPENDENCE pragma only
    ABCN_COUNT_CALL();

    for (unsigned rep = 0; rep < reps; rep++) {
        unsigned y = 0, x = 0, cf = 0, py = 0, px = 0, ox = 0;
        for (unsigned i = 0; i < IFM_H * IFM_W * CF; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = rowacc inter RAW distance = ROWACC_DIST true
            ABCN_COUNT_ITER();
            const ap_uint<WORD_W> v = in.read();
            const bool inside = (y < OFM_H * POOL) && (x < OFM_W * POOL);
            if (inside) {
                const ap_uint<WORD_W> wv = (px == 0) ? v : ap_uint<WORD_W>(win[cf] | v);
                if (px == POOL - 1) {
                    const unsigned idx = ox * CF + cf;
                    const ap_uint<WORD_W> r = (py == 0) ? wv : ap_uint<WORD_W>(rowacc[idx] | wv);
                    if (py == POOL - 1)
                        out.write(r);
                    else
                        rowacc[idx] = r;
                } else {
                    win[cf] = wv;
                }
            }
            // advance (y, x, cf) and the derived pool coordinates
            if (++cf == CF) {
                cf = 0;
                x++;
                if (++px == POOL) {
                    px = 0;
                    ox++;
                }
                if (x == IFM_W) {
                    x = 0;
                    px = 0;
                    ox = 0;
                    y++;
                    if (++py == POOL) py = 0;
                }
            }
        }
    }
}

// Convenience wrapper: C channels, N bases, SIMD channels per word.
template <unsigned IFM_H, unsigned IFM_W, unsigned C, unsigned N, unsigned SIMD, unsigned POOL>
void BitMaxPoolNC(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<ap_uint<N * SIMD> > &out,
                  unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    static_assert(C % SIMD == 0, "SIMD must divide the channel count");
    BitMaxPool<IFM_H, IFM_W, C / SIMD, N * SIMD, POOL>(in, out, reps ABCN_COUNTER_ARG(counter));
}

// BitWindowOr: OR over the KK taps of each window produced by SlidingWindowRect (per output
// pixel KK*CF words in (k, cf) order) -> CF words per output pixel. reps = number of output pixels
// (x images). One pipelined loop of KK*CF iterations per pixel; CF registers.
template <unsigned KK, unsigned CF, unsigned WORD_W>
void BitWindowOr(hls::stream<ap_uint<WORD_W> > &in, hls::stream<ap_uint<WORD_W> > &out,
                 unsigned reps ABCN_COUNTER_PARAM) {
    ap_uint<WORD_W> acc[CF];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 1
    ABCN_COUNT_CALL();
    const unsigned long long total = (unsigned long long)reps * KK * CF;
    unsigned k = 0, cf = 0;
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
        ABCN_COUNT_ITER();
        const ap_uint<WORD_W> v = in.read();
        const ap_uint<WORD_W> r = (k == 0) ? v : ap_uint<WORD_W>(acc[cf] | v);
        if (k == KK - 1)
            out.write(r);
        else
            acc[cf] = r;
        if (++cf == CF) {
            cf = 0;
            k = (k + 1 == KK) ? 0 : k + 1;
        }
    }
}

// BitMaxPoolRect: general max pool on bits (the lowering's BitMaxPool: KH x KW kernel, strides,
// paddings with pad bit 0 = -1, the identity of max on +-1): SlidingWindowRect followed by
// BitWindowOr in a DATAFLOW region. Costs KH*KW*CF cycles per output pixel; use BitMaxPool for
// the common non-overlapping POOL x POOL case (IFM_H*IFM_W*CF cycles per image).
// The optional counter receives the iterations of both (calls == 2 per call).
template <unsigned IFM_H, unsigned IFM_W, unsigned CF, unsigned WORD_W, unsigned KH, unsigned KW,
          unsigned SH, unsigned SW, unsigned PT, unsigned PL, unsigned PB, unsigned PR>
void BitMaxPoolRect(hls::stream<ap_uint<WORD_W> > &in, hls::stream<ap_uint<WORD_W> > &out,
                    unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS DATAFLOW
    constexpr unsigned OFM_H = conv_out_dim(IFM_H, KH, SH, PT, PB);
    constexpr unsigned OFM_W = conv_out_dim(IFM_W, KW, SW, PL, PR);
    hls::stream<ap_uint<WORD_W> > windows("BitMaxPoolRect.windows");
#pragma HLS STREAM variable = windows depth = 2
    SlidingWindowRect<IFM_H, IFM_W, CF, WORD_W, KH, KW, SH, SW, PT, PL, PB, PR>(
        in, windows, reps ABCN_COUNTER_ARG(counter));
    BitWindowOr<KH * KW, CF, WORD_W>(windows, out, reps * OFM_H * OFM_W ABCN_COUNTER_ARG(counter));
}

} // namespace abcn

#endif // ABCN_BIT_MAXPOOL_HPP
