// Pooling on integer streams: global sum pool (global average pool without the division) and
// max pool with -inf padding.
#ifndef ABCN_INT_POOL_HPP
#define ABCN_INT_POOL_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"
#include "residual.hpp"
#include "sliding_window.hpp"

namespace abcn {

// ---------------------------------------------------------------------------------------------
// GlobalSumPool: the lowering's GlobalSumPool, y[c] = sum over the PIXELS = H*W pixels of x[c]
// (the 1/(H*W) of a global average pool is folded into the next layer's thresholds).
//   C channels, PE per word; IN_W input field width; OUT_W output field width: the sum modulo
//   2^OUT_W, exact for OUT_W >= global_sum_pool_bits(IN_W, PIXELS) (or the lowering's bound).
// Input : PIXELS*C/PE words of PE*IN_W bits per image (integer stream, see residual.hpp).
// Output: C/PE words of PE*OUT_W bits per image, written during the image's last pixel.
// One pipelined loop of PIXELS*C/PE iterations per image (II=1). Accumulators: C values of OUT_W
// bits, PE memories of C/PE words (LUTRAM); the read-modify-write of acc[.][nf] recurs every
// NF = C/PE iterations, which the DEPENDENCE pragma states (distance NF) so that HLS can keep
// II=1 (a one-cycle LUTRAM read-add-write closes the recurrence even at NF = 1).
// ---------------------------------------------------------------------------------------------
template <unsigned C, unsigned PE, unsigned long long PIXELS, int IN_W, int OUT_W>
void GlobalSumPool(hls::stream<ap_uint<PE * IN_W> > &in, hls::stream<ap_uint<PE * OUT_W> > &out,
                   unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(C % PE == 0, "PE must divide the channel count");
    static_assert(PIXELS >= 1, "at least one pixel");
    static_assert(OUT_W >= IN_W, "the sum is at least as wide as its terms");
    constexpr unsigned NF = C / PE;
    ap_int<OUT_W> acc[PE][NF];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 1
#pragma HLS BIND_STORAGE variable = acc type = ram_2p impl = lutram
    ABCN_COUNT_CALL();
    const unsigned long long total = (unsigned long long)reps * PIXELS * NF;
    unsigned nf = 0;
    unsigned long long pix = 0;
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter RAW distance = NF true
        ABCN_COUNT_ITER();
        const ap_uint<PE * IN_W> w = in.read();
        ap_uint<PE * OUT_W> o = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            const ap_int<OUT_W> prev = (pix == 0) ? ap_int<OUT_W>(0) : acc[pe][nf];
            const ap_int<OUT_W> s = prev + int_field<IN_W>(w, pe);
            acc[pe][nf] = s;
            set_int_field<OUT_W>(o, pe, s);
        }
        if (pix == PIXELS - 1) out.write(o);
        if (++nf == NF) {
            nf = 0;
            pix = (pix + 1 == PIXELS) ? 0 : pix + 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IntWindowMax: max over the KH*KW taps of each window produced by SlidingWindowRect on an integer
// stream (per output pixel KH*KW*CF words in (ky, kx, cf) order), skipping the padding taps: the
// window generator emits 0 there, but a max pool pads with -inf (ONNX MaxPool), so the kernel
// knows the geometry and lets only real pixels compete. Every window holds at least one real
// pixel (padding < kernel), so the result is the max over its real pixels.
//   C channels, PE fields of IN_W bits per word, CF = C/PE words per pixel; geometry as
//   SlidingWindowRect. reps = images.
// One pipelined loop of OFM_H*OFM_W*KH*KW*CF iterations per image (II=1); CF running-max words
// (LUTRAM, read-modify-write every CF iterations: DEPENDENCE distance CF).
// ---------------------------------------------------------------------------------------------
template <unsigned IFM_H, unsigned IFM_W, unsigned C, unsigned PE, int IN_W, unsigned KH, unsigned KW,
          unsigned SH, unsigned SW, unsigned PT, unsigned PL, unsigned PB, unsigned PR>
void IntWindowMax(hls::stream<ap_uint<PE * IN_W> > &in, hls::stream<ap_uint<PE * IN_W> > &out,
                  unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(C % PE == 0, "PE must divide the channel count");
    static_assert(PT < KH && PB < KH && PL < KW && PR < KW, "padding must be smaller than the kernel");
    constexpr unsigned CF = C / PE;
    constexpr unsigned OFM_H = conv_out_dim(IFM_H, KH, SH, PT, PB);
    constexpr unsigned OFM_W = conv_out_dim(IFM_W, KW, SW, PL, PR);
    ap_uint<PE * IN_W> acc[CF];  // running max of the current window, per channel fold
#pragma HLS BIND_STORAGE variable = acc type = ram_2p impl = lutram
    ABCN_COUNT_CALL();
    const unsigned long long total = (unsigned long long)reps * OFM_H * OFM_W * KH * KW * CF;
    unsigned cf = 0, kx = 0, ky = 0, ox = 0, oy = 0;
    bool seen = false;
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter RAW distance = CF true
        ABCN_COUNT_ITER();
        const ap_uint<PE * IN_W> v = in.read();
        const int iy = (int)(oy * SH + ky) - (int)PT;
        const int ix = (int)(ox * SW + kx) - (int)PL;
        const bool real = iy >= 0 && iy < (int)IFM_H && ix >= 0 && ix < (int)IFM_W;
        // seen: an earlier tap (ky', kx') of this window was a real pixel (the same for every cf:
        // padding depends on the tap only); until then the running max is empty and the first
        // real tap is taken whatever its value.
        const ap_uint<PE * IN_W> cur = acc[cf];
        ap_uint<PE * IN_W> r = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            const ap_int<IN_W> a = int_field<IN_W>(cur, pe);
            const ap_int<IN_W> b = int_field<IN_W>(v, pe);
            const bool take = real && (!seen || b > a);
            set_int_field<IN_W>(r, pe, take ? b : a);
        }
        if (ky == KH - 1 && kx == KW - 1)
            out.write(r);
        else
            acc[cf] = r;
        if (++cf == CF) {
            cf = 0;
            seen = seen || real;
            if (++kx == KW) {
                kx = 0;
                if (++ky == KH) {
                    ky = 0;
                    seen = false;
                    if (++ox == OFM_W) {
                        ox = 0;
                        if (++oy == OFM_H) oy = 0;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IntMaxPool: the lowering's IntegerMaxPool (ONNX MaxPool on an integer stream: KH x KW kernel,
// strides SH/SW, pads PT/PL/PB/PR that never win, floor mode), e.g. resnet18's stem pool
// 3x3 / 2 / pad 1 on the residual value. SlidingWindowRect followed by IntWindowMax in a DATAFLOW
// region (as BitMaxPoolRect). Input: IFM_H*IFM_W*C/PE words of PE*IN_W bits per image; output:
// OFM_H*OFM_W*C/PE words, same format. reps = images. The optional counter receives the
// iterations of both loops (calls == 2 per call).
// ---------------------------------------------------------------------------------------------
template <unsigned IFM_H, unsigned IFM_W, unsigned C, unsigned PE, int IN_W, unsigned KH, unsigned KW,
          unsigned SH, unsigned SW, unsigned PT, unsigned PL, unsigned PB, unsigned PR>
void IntMaxPool(hls::stream<ap_uint<PE * IN_W> > &in, hls::stream<ap_uint<PE * IN_W> > &out,
                unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS DATAFLOW
    static_assert(C % PE == 0, "PE must divide the channel count");
    hls::stream<ap_uint<PE * IN_W> > windows("IntMaxPool.windows");
#pragma HLS STREAM variable = windows depth = 2
    SlidingWindowRect<IFM_H, IFM_W, C / PE, PE * IN_W, KH, KW, SH, SW, PT, PL, PB, PR>(
        in, windows, reps ABCN_COUNTER_ARG(counter));
    IntWindowMax<IFM_H, IFM_W, C, PE, IN_W, KH, KW, SH, SW, PT, PL, PB, PR>(
        windows, out, reps ABCN_COUNTER_ARG(counter));
}

} // namespace abcn

#endif // ABCN_INT_POOL_HPP
