// Residual-network kernels on integer streams: stream fork, residual join (add), add-and-threshold,
// integer threshold.
#ifndef ABCN_RESIDUAL_HPP
#define ABCN_RESIDUAL_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"

namespace abcn {

// ---------------------------------------------------------------------------------------------
// Integer streams (RESIDUAL-SPEC section 3): a word holds PE two's-complement fields of W bits,
// field j (bits [j*W, (j+1)*W)) = channel nf*PE + j; C/PE words per pixel, pixels in (y, x)
// order. This is the MVU's output word with a MultiBaseAccumulate activation (logit_at).
// ---------------------------------------------------------------------------------------------

// Field j of an integer-stream word, as a signed W-bit integer.
template <int W, int WORD_W>
inline ap_int<W> int_field(const ap_uint<WORD_W> &word, unsigned j) {
#pragma HLS INLINE
    return ap_int<W>(ap_uint<W>(word((j + 1) * W - 1, j * W)));
}

// Store v (two's complement, modulo 2^W) into field j of an integer-stream word.
template <int W, int WORD_W, int VW>
inline void set_int_field(ap_uint<WORD_W> &word, unsigned j, const ap_int<VW> &v) {
#pragma HLS INLINE
    word((j + 1) * W - 1, j * W) = ap_uint<W>(ap_int<W>(v));
}

#if ABCN_CSIM_FAST
// C simulation: the fields of integer-stream words as native integers (W <= 64 bits), through
// 64-bit chunks (csim_load_chunks / csim_store_chunks): bit-exact with int_field / set_int_field.
inline long long csim_sext(unsigned long long v, unsigned w) {
    return w >= 64 ? (long long)v : (long long)(v << (64 - w)) >> (64 - w);
}
template <int W, unsigned PE, int WORD_W>
inline void csim_unpack_fields(const ap_uint<WORD_W> &word, long long (&x)[PE]) {
    unsigned long long ch[(WORD_W + 63) / 64 + 1];
    csim_load_chunks(word, ch);
    ch[(WORD_W + 63) / 64] = 0;
    for (unsigned j = 0; j < PE; j++) x[j] = csim_sext(csim_get_bits(ch, j * W, W), W);
}
template <int W, unsigned PE>
inline ap_uint<PE * W> csim_pack_fields(const long long (&v)[PE]) {
    unsigned long long ch[(PE * W + 63) / 64 + 1] = {0};
    const unsigned long long mask = W >= 64 ? ~0ull : (1ull << W) - 1ull;  // modulo 2^W
    for (unsigned j = 0; j < PE; j++) csim_put_bits(ch, j * W, (unsigned long long)v[j] & mask, W);
    return csim_store_chunks<PE * W>(ch);
}
#endif

// Width of the exact join  y = s0*x0 [+ s1*x1] + t  for signed x0 (IN0_W bits), x1 (IN1_W), s (S_W),
// t (T_W): each product needs S_W + IN_W bits, the sum of three terms two more.
constexpr unsigned residual_sum_bits(unsigned in0_w, unsigned in1_w, unsigned s_w, unsigned t_w) {
    return umax(umax(s_w + in0_w, s_w + in1_w), t_w) + 2;
}

// Width of a per-image sum of PIXELS signed IN_W-bit values (GlobalSumPool): exact.
constexpr unsigned global_sum_pool_bits(unsigned in_w, unsigned long long pixels) {
    return in_w + clog2(pixels);
}

// ---------------------------------------------------------------------------------------------
// DuplicateStreams: the fork of a stream read by two consumers (e.g. the bit stream of a block's
// input quantizer, read by conv1's window generator and by the shortcut conv, or an integer
// residual read by the join and by the next threshold). Every input word is written to both
// outputs in the same cycle. WORDS_PER_IMAGE input words per image; reps = images.
// One pipelined loop of WORDS_PER_IMAGE iterations per image (II=1); no buffer.
// ---------------------------------------------------------------------------------------------
template <unsigned WORD_W, unsigned long long WORDS_PER_IMAGE>
void DuplicateStreams(hls::stream<ap_uint<WORD_W> > &in, hls::stream<ap_uint<WORD_W> > &out0,
                      hls::stream<ap_uint<WORD_W> > &out1, unsigned reps ABCN_COUNTER_PARAM) {
    ABCN_COUNT_CALL();
    const unsigned long long total = (unsigned long long)reps * WORDS_PER_IMAGE;
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
        ABCN_COUNT_ITER();
        const ap_uint<WORD_W> w = in.read();
        out0.write(w);
        out1.write(w);
    }
}

// ---------------------------------------------------------------------------------------------
// ShiftRoundEven<SHIFT>: round(v / 2^SHIFT) with ties to even (SHIFT = 0: v), exact on two's
// complement: the requantisation of a residual join onto a coarser power-of-two grid (the
// lowering's ResidualAdd shift; the export's exact float32 Round(v * 2^-SHIFT)).
//   q = v >> SHIFT (floor), rem = v mod 2^SHIFT;  q + 1 when rem > 2^(SHIFT-1), or rem == 2^(SHIFT-1)
//   and q is odd. |result| <= |v|, so the result fits v's width.
// ---------------------------------------------------------------------------------------------
template <unsigned SHIFT>
struct ShiftRoundEven {
    static_assert(SHIFT < 63, "rounding shift below 63 bits");
    template <int W>
    static ap_int<W> apply(const ap_int<W> &v) {
#pragma HLS INLINE
        const ap_int<W> q = v >> SHIFT;
        const ap_uint<SHIFT> rem = ap_uint<SHIFT>(v);  // the low SHIFT bits
        const ap_uint<SHIFT> half = ap_uint<SHIFT>(1) << (SHIFT - 1);
        const bool up = rem > half || (rem == half && q[0] == 1);
        return ap_int<W>(q + (up ? 1 : 0));
    }
    static long long native(long long v) {
        const long long q = v >> SHIFT;  // arithmetic shift (two's complement, as ap_int)
        const unsigned long long rem = (unsigned long long)v & ((1ull << SHIFT) - 1ull);
        const unsigned long long half = 1ull << (SHIFT - 1);
        return q + ((rem > half || (rem == half && (q & 1))) ? 1 : 0);
    }
};
template <>
struct ShiftRoundEven<0> {
    template <int W>
    static ap_int<W> apply(const ap_int<W> &v) {
#pragma HLS INLINE
        return v;
    }
    static long long native(long long v) { return v; }
};

// ---------------------------------------------------------------------------------------------
// Parameters of a residual join: the lowering's ResidualAdd(X0, [X1,] S, T; shift = SHIFT),
//     y[c] = rshift(sum_k s[k][c] * x_k[c] + t[c], SHIFT),    K = 1 (stem / affine / a
// requantisation) or 2 (join) inputs; rshift = ShiftRoundEven (SHIFT = 0: none).
// Channel c = nf*PE + pe. Plain aggregate (brace-initialisable const global):
//   s[pe][nf][k]   integer multiplier of input k for channel c (S[k, c] of the lowering)
//   t[pe][nf]      integer offset of channel c (T[c])
// For HLS, partition s and t completely in dim 1 (PE) at the top level, like the thresholds.
// ---------------------------------------------------------------------------------------------
template <unsigned C, unsigned PE, unsigned K, int S_W, int T_W, unsigned SHIFT = 0>
struct ResidualAddParams {
    static_assert(C % PE == 0, "PE must divide the channel count");
    static_assert(K == 1 || K == 2, "a residual join has 1 or 2 inputs");
    static_assert(S_W >= 1 && S_W <= 32 && T_W >= 1 && T_W <= 64, "S_W in 1..32, T_W in 1..64");
    static constexpr unsigned NF = C / PE;
    static constexpr unsigned CH = C, P = PE, INPUTS = K, SH = SHIFT;
    static constexpr int SW = S_W, TW = T_W;

    ap_int<S_W> s[PE][NF][K];
    ap_int<T_W> t[PE][NF];

    // y[pe] = rshift(s0*x0[pe] (+ s1*x1[pe]) + t, SHIFT), exact at Y_W bits (Y_W >= residual_sum_bits).
    template <int Y_W, int X0_W, int X1_W>
    void apply(unsigned nf, const ap_int<X0_W> (&x0)[PE], const ap_int<X1_W> (&x1)[PE],
               ap_int<Y_W> (&y)[PE]) const {
#pragma HLS INLINE
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            ap_int<Y_W> acc = ap_int<Y_W>(t[pe][nf]);
            acc += ap_int<S_W + X0_W>(s[pe][nf][0] * x0[pe]);
            if (K == 2) acc += ap_int<S_W + X1_W>(s[pe][nf][K - 1] * x1[pe]);
            y[pe] = ShiftRoundEven<SHIFT>::apply(acc);
        }
    }
#if ABCN_CSIM_FAST
    // C simulation: the same y on native integers (exact when residual_sum_bits <= 63)
    void apply_native(unsigned nf, const long long (&x0)[PE], const long long (&x1)[PE], long long (&y)[PE]) const {
        for (unsigned pe = 0; pe < PE; pe++) {
            long long acc = t[pe][nf].to_int64() + s[pe][nf][0].to_int64() * x0[pe];
            if (K == 2) acc += s[pe][nf][K - 1].to_int64() * x1[pe];
            y[pe] = ShiftRoundEven<SHIFT>::native(acc);
        }
    }
#endif
};

// The identity "join" (y = x0): used by IntThreshold.
template <unsigned C, unsigned PE>
struct IntIdentity {
    static_assert(C % PE == 0, "PE must divide the channel count");
    static constexpr unsigned NF = C / PE;
    static constexpr unsigned CH = C, P = PE, INPUTS = 1;
    static constexpr int SW = 1, TW = 1;
    template <int Y_W, int X0_W, int X1_W>
    void apply(unsigned, const ap_int<X0_W> (&x0)[PE], const ap_int<X1_W> (&)[PE],
               ap_int<Y_W> (&y)[PE]) const {
#pragma HLS INLINE
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            y[pe] = x0[pe];
        }
    }
#if ABCN_CSIM_FAST
    void apply_native(unsigned, const long long (&x0)[PE], const long long (&)[PE], long long (&y)[PE]) const {
        for (unsigned pe = 0; pe < PE; pe++) y[pe] = x0[pe];
    }
#endif
};

// ---------------------------------------------------------------------------------------------
// Parameters of an integer threshold unit: the lowering's IntegerThreshold(X, T, S), the next
// layer's NOUT activation bases of an integer value (same rule as MultiBaseThreshold):
//     out_j[c] = pos[c] ? (x[c] >= thr[c][j]) : (x[c] <= thr[c][j])
//   thr[pe][nf][j]   threshold of base j for channel c = nf*PE + pe (THR_W-bit signed; the
//                    lowering's int32 T, int64 when rounded: THR_W up to 64)
//   pos[pe][nf]      1 for S[c] = +1, 0 for S[c] = -1
// Output word (NOUT*PE bits, base-major like the MVU's threshold output): bit j*PE + pe = base j
// of channel nf*PE + pe. For HLS, partition thr and pos completely in dim 1 (PE).
// ---------------------------------------------------------------------------------------------
template <unsigned C, unsigned PE, unsigned NOUT, int THR_W>
struct IntThresholdParams {
    static_assert(C % PE == 0, "PE must divide the channel count");
    static_assert(NOUT >= 1, "at least one output base");
    static_assert(THR_W >= 1 && THR_W <= 64, "THR_W in 1..64");
    static constexpr unsigned NF = C / PE;
    static constexpr unsigned CH = C, P = PE, BASES = NOUT;
    typedef ap_uint<NOUT * PE> out_t;

    ap_int<THR_W> thr[PE][NF][NOUT];
    ap_uint<1> pos[PE][NF];

    template <int Y_W>
    out_t activate(unsigned nf, const ap_int<Y_W> (&y)[PE]) const {
#pragma HLS INLINE
        out_t out = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            for (unsigned j = 0; j < NOUT; j++) {
#pragma HLS UNROLL
                // ap_int comparisons across widths are exact (both sides sign-extended)
                const bool ge = y[pe] >= thr[pe][nf][j];
                const bool le = y[pe] <= thr[pe][nf][j];
                out[j * PE + pe] = pos[pe][nf] ? ge : le;
            }
        }
        return out;
    }
#if ABCN_CSIM_FAST
    // C simulation: the same word from native integers (thresholds of <= 64 bits are exact)
    out_t activate_native(unsigned nf, const long long (&y)[PE]) const {
        unsigned long long ch[(NOUT * PE + 63) / 64 + 1] = {0};
        for (unsigned pe = 0; pe < PE; pe++) {
            const bool p = pos[pe][nf] != 0;
            for (unsigned j = 0; j < NOUT; j++) {
                const long long th = thr[pe][nf][j].to_int64();
                const bool bit = p ? (y[pe] >= th) : (y[pe] <= th);
                ch[(j * PE + pe) / 64] |= (unsigned long long)bit << ((j * PE + pe) % 64);
            }
        }
        return csim_store_chunks<NOUT * PE>(ch);
    }
#endif
};

// No threshold (ResidualAdd emits the sum only).
struct NoIntThreshold {
    static constexpr unsigned BASES = 0;
    typedef ap_uint<1> out_t;
    template <unsigned PE, int Y_W>
    out_t activate(unsigned, const ap_int<Y_W> (&)[PE]) const { return 0; }
    template <unsigned PE>
    out_t activate_native(unsigned, const long long (&)[PE]) const { return 0; }
};

// ---------------------------------------------------------------------------------------------
// residual_join: the one pipelined loop behind ResidualAdd, ResidualAddThreshold,
// ResidualAddThresholdSum and IntThreshold (inlined into each). Per iteration (II=1) it reads one
// word of in0 (and of in1 when K == 2), computes the PE channel values y exactly
// (Y_W = residual_sum_bits), and writes the threshold word (EMIT_BITS) and/or the sum word
// (EMIT_SUM, PE fields of OUT_W bits: y modulo 2^OUT_W, exact whenever y fits OUT_W bits -- the
// generator sizes OUT_W from the lowering's bound). Thresholds compare the exact y.
// reps = images; PIXELS*NF iterations per image.
// ---------------------------------------------------------------------------------------------
template <unsigned PE, unsigned NF, unsigned long long PIXELS, int IN0_W, int IN1_W, int OUT_W,
          bool EMIT_BITS, bool EMIT_SUM, class AP, class TP>
void residual_join(hls::stream<ap_uint<PE * IN0_W> > &in0, hls::stream<ap_uint<PE * IN1_W> > &in1,
                   hls::stream<typename TP::out_t> &bits, hls::stream<ap_uint<PE * OUT_W> > &sum,
                   const AP &add, const TP &thr, unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    constexpr unsigned K = AP::INPUTS;
    constexpr int Y_W = (int)residual_sum_bits(IN0_W, K == 2 ? IN1_W : 1, AP::SW, AP::TW);
    static_assert(Y_W <= 128, "residual join wider than 128 bits");
    ABCN_COUNT_CALL();
    const unsigned long long total = (unsigned long long)reps * PIXELS * NF;
    unsigned nf = 0;
#if ABCN_CSIM_FAST
    // C simulation: the same reads, writes and counts on native integers (bit-exact: y fits 63
    // bits, every field <= 64 bits); a wide ap_uint field access costs ~100 ns here.
    if (Y_W <= 63 && IN0_W <= 64 && IN1_W <= 64 && OUT_W <= 64) {
        for (unsigned long long i = 0; i < total; i++) {
            ABCN_COUNT_ITER();
            long long x0[PE], x1[PE], y[PE];
            csim_unpack_fields<IN0_W>(in0.read(), x0);
            if (K == 2)
                csim_unpack_fields<IN1_W>(in1.read(), x1);
            else
                for (unsigned pe = 0; pe < PE; pe++) x1[pe] = 0;
            add.apply_native(nf, x0, x1, y);
            if (EMIT_BITS) bits.write(thr.activate_native(nf, y));
            if (EMIT_SUM) sum.write(csim_pack_fields<OUT_W>(y));
            nf = (nf + 1 == NF) ? 0 : nf + 1;
        }
        return;
    }
#endif
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
        ABCN_COUNT_ITER();
        const ap_uint<PE * IN0_W> w0 = in0.read();
        ap_uint<PE * IN1_W> w1 = 0;
        if (K == 2) w1 = in1.read();
        ap_int<IN0_W> x0[PE];
        ap_int<IN1_W> x1[PE];
        ap_int<Y_W> y[PE];
#pragma HLS ARRAY_PARTITION variable = x0 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = x1 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = y complete dim = 1
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            x0[pe] = int_field<IN0_W>(w0, pe);
            x1[pe] = int_field<IN1_W>(w1, pe);
        }
        add.template apply<Y_W>(nf, x0, x1, y);
        if (EMIT_BITS) bits.write(thr.activate(nf, y));
        if (EMIT_SUM) {
            ap_uint<PE * OUT_W> o = 0;
            for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
                set_int_field<OUT_W>(o, pe, y[pe]);
            }
            sum.write(o);
        }
        nf = (nf + 1 == NF) ? 0 : nf + 1;
    }
}

// Consistency of a join's parameter objects with the kernel's template arguments.
#define ABCN_CHECK_JOIN(AP_, K_)                                                              \
    static_assert(AP_::CH == C && AP_::P == PE, "join parameters: C / PE do not match");         \
    static_assert(AP_::INPUTS == K_, "join parameters: wrong number of inputs (ResidualAddParams K)")

// ---------------------------------------------------------------------------------------------
// ResidualAdd: the join, integer sum out.  y = s0*x0 + s1*x1 + t  (two inputs, AP::INPUTS == 2)
// or y = s0*x0 + t (one input: the stem's fixed-point affine, AP::INPUTS == 1).
//   C channels, PE per word (both inputs and the output), PIXELS = H*W per image, reps = images
//   IN0_W, IN1_W  field widths of the inputs (a MultiBaseAccumulate's ACC_W or a previous join's
//                 OUT_W);  OUT_W  field width of the output
//   AP = ResidualAddParams<C, PE, K, S_W, T_W>
// Input words: PIXELS*C/PE per image and input; output: the same count of PE*OUT_W-bit words.
// ---------------------------------------------------------------------------------------------
template <unsigned C, unsigned PE, unsigned long long PIXELS, int IN0_W, int IN1_W, int OUT_W, class AP>
void ResidualAdd(hls::stream<ap_uint<PE * IN0_W> > &in0, hls::stream<ap_uint<PE * IN1_W> > &in1,
                 hls::stream<ap_uint<PE * OUT_W> > &out, const AP &add, unsigned reps ABCN_COUNTER_PARAM) {
    ABCN_CHECK_JOIN(AP, 2);
    hls::stream<ap_uint<1> > no_bits("ResidualAdd.no_bits");  // never written
    residual_join<PE, C / PE, PIXELS, IN0_W, IN1_W, OUT_W, false, true>(
        in0, in1, no_bits, out, add, NoIntThreshold(), reps ABCN_COUNTER_ARG(counter));
}

template <unsigned C, unsigned PE, unsigned long long PIXELS, int IN_W, int OUT_W, class AP>
void ResidualAdd(hls::stream<ap_uint<PE * IN_W> > &in, hls::stream<ap_uint<PE * OUT_W> > &out,
                 const AP &add, unsigned reps ABCN_COUNTER_PARAM) {
    ABCN_CHECK_JOIN(AP, 1);
    hls::stream<ap_uint<PE> > no_in1("ResidualAdd.no_in1");   // never read
    hls::stream<ap_uint<1> > no_bits("ResidualAdd.no_bits");  // never written
    residual_join<PE, C / PE, PIXELS, IN_W, 1, OUT_W, false, true>(
        in, no_in1, no_bits, out, add, NoIntThreshold(), reps ABCN_COUNTER_ARG(counter));
}

// ---------------------------------------------------------------------------------------------
// ResidualAddThreshold: the join fused with the next layer's threshold unit (the block output
// feeds only quantized consumers: a downsampling block's conv1 and shortcut conv). Emits the
// TP::BASES bit bases of y per channel (TP = IntThresholdParams<C, PE, NOUT, THR_W>), NOUT*PE bits
// per word, C/PE words per pixel. One or two inputs as ResidualAdd.
// ---------------------------------------------------------------------------------------------
template <unsigned C, unsigned PE, unsigned long long PIXELS, int IN0_W, int IN1_W, class AP, class TP>
void ResidualAddThreshold(hls::stream<ap_uint<PE * IN0_W> > &in0, hls::stream<ap_uint<PE * IN1_W> > &in1,
                          hls::stream<typename TP::out_t> &bits, const AP &add, const TP &thr,
                          unsigned reps ABCN_COUNTER_PARAM) {
    ABCN_CHECK_JOIN(AP, 2);
    static_assert(TP::CH == C && TP::P == PE, "threshold parameters: C / PE do not match");
    hls::stream<ap_uint<PE> > no_sum("ResidualAddThreshold.no_sum");  // never written
    residual_join<PE, C / PE, PIXELS, IN0_W, IN1_W, 1, true, false>(
        in0, in1, bits, no_sum, add, thr, reps ABCN_COUNTER_ARG(counter));
}

template <unsigned C, unsigned PE, unsigned long long PIXELS, int IN_W, class AP, class TP>
void ResidualAddThreshold(hls::stream<ap_uint<PE * IN_W> > &in, hls::stream<typename TP::out_t> &bits,
                          const AP &add, const TP &thr, unsigned reps ABCN_COUNTER_PARAM) {
    ABCN_CHECK_JOIN(AP, 1);
    static_assert(TP::CH == C && TP::P == PE, "threshold parameters: C / PE do not match");
    hls::stream<ap_uint<PE> > no_in1("ResidualAddThreshold.no_in1");  // never read
    hls::stream<ap_uint<PE> > no_sum("ResidualAddThreshold.no_sum");  // never written
    residual_join<PE, C / PE, PIXELS, IN_W, 1, 1, true, false>(
        in, no_in1, bits, no_sum, add, thr, reps ABCN_COUNTER_ARG(counter));
}

// ---------------------------------------------------------------------------------------------
// ResidualAddThresholdSum: the join emitting both the next layer's bit bases (bits) and the sum
// (sum, PE fields of OUT_W bits) for the next block's identity shortcut, from the same y in the
// same cycle. One or two inputs as ResidualAdd.
// ---------------------------------------------------------------------------------------------
template <unsigned C, unsigned PE, unsigned long long PIXELS, int IN0_W, int IN1_W, int OUT_W, class AP, class TP>
void ResidualAddThresholdSum(hls::stream<ap_uint<PE * IN0_W> > &in0, hls::stream<ap_uint<PE * IN1_W> > &in1,
                             hls::stream<typename TP::out_t> &bits, hls::stream<ap_uint<PE * OUT_W> > &sum,
                             const AP &add, const TP &thr, unsigned reps ABCN_COUNTER_PARAM) {
    ABCN_CHECK_JOIN(AP, 2);
    static_assert(TP::CH == C && TP::P == PE, "threshold parameters: C / PE do not match");
    residual_join<PE, C / PE, PIXELS, IN0_W, IN1_W, OUT_W, true, true>(
        in0, in1, bits, sum, add, thr, reps ABCN_COUNTER_ARG(counter));
}

template <unsigned C, unsigned PE, unsigned long long PIXELS, int IN_W, int OUT_W, class AP, class TP>
void ResidualAddThresholdSum(hls::stream<ap_uint<PE * IN_W> > &in, hls::stream<typename TP::out_t> &bits,
                             hls::stream<ap_uint<PE * OUT_W> > &sum, const AP &add, const TP &thr,
                             unsigned reps ABCN_COUNTER_PARAM) {
    ABCN_CHECK_JOIN(AP, 1);
    static_assert(TP::CH == C && TP::P == PE, "threshold parameters: C / PE do not match");
    hls::stream<ap_uint<PE> > no_in1("ResidualAddThresholdSum.no_in1");  // never read
    residual_join<PE, C / PE, PIXELS, IN_W, 1, OUT_W, true, true>(
        in, no_in1, bits, sum, add, thr, reps ABCN_COUNTER_ARG(counter));
}

// ---------------------------------------------------------------------------------------------
// IntThreshold: integer stream -> the NOUT bit bases of each value (the lowering's
// IntegerThreshold; same rule as MultiBaseThreshold), TP = IntThresholdParams<C, PE, NOUT, THR_W>.
// Input: PIXELS*C/PE words of PE*IN_W bits per image; output: as many words of NOUT*PE bits.
// ---------------------------------------------------------------------------------------------
template <unsigned C, unsigned PE, unsigned long long PIXELS, int IN_W, class TP>
void IntThreshold(hls::stream<ap_uint<PE * IN_W> > &in, hls::stream<typename TP::out_t> &bits,
                  const TP &thr, unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(TP::CH == C && TP::P == PE, "threshold parameters: C / PE do not match");
    hls::stream<ap_uint<PE> > no_in1("IntThreshold.no_in1");  // never read
    hls::stream<ap_uint<PE> > no_sum("IntThreshold.no_sum");  // never written
    residual_join<PE, C / PE, PIXELS, IN_W, 1, 1, true, false>(
        in, no_in1, bits, no_sum, IntIdentity<C, PE>(), thr, reps ABCN_COUNTER_ARG(counter));
}

#undef ABCN_CHECK_JOIN

} // namespace abcn

#endif // ABCN_RESIDUAL_HPP
