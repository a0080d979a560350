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

#if ABCN_CSIM_FAST
#include <cstddef>
#include <vector>
#endif

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
#if ABCN_CSIM_FAST
    // C simulation: the same reads, writes and counts on native integers: the int64 sum of PIXELS
    // values of IN_W bits is exact, and taking it modulo 2^OUT_W at the output (csim_pack_fields)
    // equals the ap_int<OUT_W> running sum modulo 2^OUT_W.
    if (IN_W + clog2(PIXELS) <= 63 && OUT_W <= 64) {
        std::vector<long long> nacc((std::size_t)NF * PE);
        for (unsigned long long i = 0; i < total; i++) {
            ABCN_COUNT_ITER();
            long long x[PE], o[PE];
            csim_unpack_fields<IN_W>(in.read(), x);
            for (unsigned pe = 0; pe < PE; pe++) {
                long long &a = nacc[(std::size_t)nf * PE + pe];
                a = (pix == 0 ? 0 : a) + x[pe];
                o[pe] = a;
            }
            if (pix == PIXELS - 1) out.write(csim_pack_fields<OUT_W>(o));
            if (++nf == NF) {
                nf = 0;
                pix = (pix + 1 == PIXELS) ? 0 : pix + 1;
            }
        }
        return;
    }
#endif
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

// Position of the current window tap in IntWindowMax's input (order oy, ox, ky, kx, cf) and
// whether an earlier tap of the window was a real pixel (seen; the same for every cf: padding
// depends on the tap only).
template <unsigned IFM_H, unsigned IFM_W, unsigned CF, unsigned KH, unsigned KW, unsigned SH, unsigned SW,
          unsigned PT, unsigned PL, unsigned OFM_H, unsigned OFM_W>
struct WindowTapCursor {
    unsigned cf = 0, kx = 0, ky = 0, ox = 0, oy = 0;
    bool seen = false;
    bool real() const {
#pragma HLS INLINE
        const int iy = (int)(oy * SH + ky) - (int)PT;
        const int ix = (int)(ox * SW + kx) - (int)PL;
        return iy >= 0 && iy < (int)IFM_H && ix >= 0 && ix < (int)IFM_W;
    }
    bool last_tap() const {
#pragma HLS INLINE
        return ky == KH - 1 && kx == KW - 1;
    }
    void next(bool was_real) {
#pragma HLS INLINE
        if (++cf == CF) {
            cf = 0;
            seen = seen || was_real;
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
};

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
    WindowTapCursor<IFM_H, IFM_W, CF, KH, KW, SH, SW, PT, PL, OFM_H, OFM_W> tap;
#if ABCN_CSIM_FAST
    // C simulation: the same reads, writes, counts and selection on native integers (IN_W <= 64).
    if (IN_W <= 64) {
        std::vector<long long> nacc((std::size_t)CF * PE);
        for (unsigned long long i = 0; i < total; i++) {
            ABCN_COUNT_ITER();
            long long b[PE];
            csim_unpack_fields<IN_W>(in.read(), b);
            const bool real = tap.real();
            long long *a = &nacc[(std::size_t)tap.cf * PE];
            for (unsigned pe = 0; pe < PE; pe++)
                if (real && (!tap.seen || b[pe] > a[pe])) a[pe] = b[pe];
            if (tap.last_tap()) {
                long long r[PE];
                for (unsigned pe = 0; pe < PE; pe++) r[pe] = a[pe];
                out.write(csim_pack_fields<IN_W>(r));
            }
            tap.next(real);
        }
        return;
    }
#endif
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter RAW distance = CF true
        ABCN_COUNT_ITER();
        const ap_uint<PE * IN_W> v = in.read();
        const bool real = tap.real();
        // until the window has seen a real pixel its running max is empty: the first real tap is
        // taken whatever its value; padding taps never change it
        const ap_uint<PE * IN_W> cur = acc[tap.cf];
        ap_uint<PE * IN_W> r = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            const ap_int<IN_W> a = int_field<IN_W>(cur, pe);
            const ap_int<IN_W> b = int_field<IN_W>(v, pe);
            const bool take = real && (!tap.seen || b > a);
            set_int_field<IN_W>(r, pe, take ? b : a);
        }
        if (tap.last_tap())
            out.write(r);
        else
            acc[tap.cf] = r;
        tap.next(real);
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
