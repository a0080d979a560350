// Final (logits) layer: the integer accumulator of each class, no threshold.
#ifndef ABCN_LOGITS_HPP
#define ABCN_LOGITS_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"
#include "input_layer.hpp"
#include "multibase_threshold.hpp"
#include "xnor_mvu.hpp"

namespace abcn {

// XnorLogits: XnorMVU + MultiBaseAccumulate. Output: NF words of PE*ACC_W bits per vector;
// bits [pe*ACC_W, (pe+1)*ACC_W) hold acc[nf*PE+pe] = sum_m sum_n a[m][o] b[n] dot_mn[o] as a
// two's-complement integer. The float scaling (and any bias) is applied after the accelerator.
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned N, int A_W,
          int B_W, int ACC_W>
void XnorLogits(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<ap_uint<PE * ACC_W> > &out,
                const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights,
                const MultiBaseAccumulate<MH, PE, M, N, xnor_dot_max(MW), A_W, B_W, ACC_W> &act,
                unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    XnorMVU<MW, MH, SIMD, PE, M, N>(in, out, weights, act, reps ABCN_COUNTER_ARG(counter));
}

// IntLogits: IntMVU + MultiBaseAccumulate (N = 1), for a network whose only layer sees pixels.
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned IN_BITS,
          bool IN_SIGNED, int A_W, int B_W, int ACC_W>
void IntLogits(hls::stream<ap_uint<SIMD * IN_BITS> > &in, hls::stream<ap_uint<PE * ACC_W> > &out,
               const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights,
               const MultiBaseAccumulate<MH, PE, M, 1, int_dot_max(MW, IN_BITS, IN_SIGNED), A_W,
                                         B_W, ACC_W> &act,
               unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    IntMVU<MW, MH, SIMD, PE, M, IN_BITS, IN_SIGNED>(in, out, weights, act,
                                                   reps ABCN_COUNTER_ARG(counter));
}

// Unpack element pe of a logits word (host / testbench side).
template <int ACC_W, int WORD_W>
inline ap_int<ACC_W> logit_at(const ap_uint<WORD_W> &word, unsigned pe) {
    return ap_int<ACC_W>(ap_uint<ACC_W>(word((pe + 1) * ACC_W - 1, pe * ACC_W)));
}

} // namespace abcn

#endif // ABCN_LOGITS_HPP
