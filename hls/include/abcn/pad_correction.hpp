// Zero-padding correction of a binary convolution (PyTorch / Brevitas zero padding).
#ifndef ABCN_PAD_CORRECTION_HPP
#define ABCN_PAD_CORRECTION_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"

namespace abcn {

// Bits cannot hold the value 0, so the window generator pads every base with bit 0 (-1). A
// convolution that pads with 0 is then corrected after the popcount: a window tap on the padding
// added -B_m[o][tap] to the dot product instead of 0, so
//     dot_mn[o](y, x) = dot'_mn[o](y, x) + corr_m[o](y, x),
//     corr_m[o](y, x) = sum of B_m[o][tap] (+-1) over the taps of window (y, x) on the padding.
// corr depends on the weights only (not on the activation base n: every base gets the same term,
// and the multi-base accumulator scales it by a[m][o]*b[n] like the rest of the dot), and on the
// output pixel only through which kernel rows and which kernel columns fall on the padding. Those
// are the row class row[y] (RC classes: one per distinct (top, bottom) overlap, at most PT+PB+1
// for maps larger than the kernel) and column class col[x] (CC classes), so the table holds
// RC*CC small integers per output channel and weight base; the interior class holds 0.
//
//   OFM_H, OFM_W   output map; the vectors of an image come in (y, x) order (reps = pixels x images)
//   MH, PE, M      output channels, PE, weight bases (as the MVU)
//   RC, CC         row / column classes;  CW  signed width of the corrections
//   c[pe][nf][m][rc*CC + cc]  correction of channel o = nf*PE + pe, weight base m
// For HLS, partition c completely in dim 1 (PE) at the top level, like the threshold parameters.
// Cost: a ROM of MH*M*RC*CC words of CW bits and PE*M*N adders of DW bits (one per dot product),
// in the same pipeline stage as the dot products: no extra cycles.

// Output pixel (y, x) of the current vector: advanced once per vector, wraps per image.
template <unsigned OFM_H, unsigned OFM_W>
struct PixelCounter {
    unsigned y = 0, x = 0;
    void next() {
#pragma HLS INLINE
        if (++x == OFM_W) {
            x = 0;
            if (++y == OFM_H) y = 0;
        }
    }
};

// No correction: unpadded convolutions, bit-0 padding (ABC layers: pad with -sum(beta)), FC layers.
struct NoPadCorrection {
    static constexpr bool enabled = false;
    static constexpr unsigned OFM_H = 1, OFM_W = 1;
    template <unsigned NF, unsigned PE, unsigned M, unsigned N, int DW>
    void apply(unsigned, unsigned, unsigned, ap_int<DW> (&)[PE][M][N]) const {}
};

template <unsigned OFM_H_, unsigned OFM_W_, unsigned MH, unsigned PE, unsigned M, unsigned RC, unsigned CC, int CW>
struct ZeroPadCorrection {
    static_assert(MH % PE == 0, "PE must divide MH");
    static_assert(CW >= 2 && CW <= 32, "correction width 2..32");
    static_assert(RC >= 1 && RC <= 255 && CC >= 1 && CC <= 255, "1..255 row / column classes");
    static constexpr bool enabled = true;
    static constexpr unsigned OFM_H = OFM_H_, OFM_W = OFM_W_;
    static constexpr unsigned NF = MH / PE;
    typedef rom_int<CW> rom;
    unsigned char row[OFM_H];          // row class of output row y, < RC
    unsigned char col[OFM_W];          // column class of output column x, < CC
    typename rom::type c[PE][NF][M][RC * CC];

    // dots[pe][m][n] += corr of channel nf*PE + pe, weight base m, at output pixel (y, x).
    template <unsigned NF_, unsigned PE_, unsigned M_, unsigned N, int DW>
    void apply(unsigned nf, unsigned y, unsigned x, ap_int<DW> (&dots)[PE_][M_][N]) const {
#pragma HLS INLINE
        static_assert(NF_ == NF && PE_ == PE && M_ == M, "correction table does not match the MVU");
        const unsigned cls = (unsigned)row[y] * CC + col[x];
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            for (unsigned m = 0; m < M; m++) {
#pragma HLS UNROLL
                const ap_int<CW> cv = rom::get(c[pe][nf][m][cls]);
                for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                    // |dot| <= MW before and after the correction: the sum fits DW bits
                    dots[pe][m][n] = ap_int<DW>(dots[pe][m][n] + cv);
                }
            }
        }
    }
};

} // namespace abcn

#endif // ABCN_PAD_CORRECTION_HPP
