// Testbench: the residual join kernels of residual.hpp.
//   CFG_MODE 0  ResidualAdd              (sum out)
//            1  ResidualAddThreshold     (bits out)
//            2  ResidualAddThresholdSum  (bits and sum out)
//            3  IntThreshold             (bits out; no join parameters, CFG_K must be 1)
// Config: CFG_C CFG_PE CFG_PIXELS CFG_K (inputs: 1 or 2) CFG_MODE CFG_IN0_W CFG_IN1_W CFG_OUT_W
//         CFG_S_W CFG_T_W CFG_NOUT CFG_THR_W [CFG_SHIFT: the join's rounding shift, default 0].
// Input : reps (images); join parameters s[pe][nf][k], t[pe][nf] (modes 0-2); threshold
//         parameters thr[pe][nf][j], pos[pe][nf] (modes 1-3); reps*PIXELS*C/PE words of input 0
//         (PE*IN0_W bits), then as many of input 1 (K == 2).
// Output: the bit words (modes 1-3), then the sum words (modes 0, 2), then the counter.
#include "tb_common.hpp"

#ifndef CFG_SHIFT
#define CFG_SHIFT 0
#endif

constexpr unsigned C = CFG_C, PE = CFG_PE, NF = C / PE, K = CFG_K, NOUT = CFG_NOUT;
constexpr unsigned long long PIXELS = CFG_PIXELS;
constexpr int IN0_W = CFG_IN0_W, IN1_W = CFG_IN1_W, OUT_W = CFG_OUT_W;
constexpr int S_W = CFG_S_W, T_W = CFG_T_W, THR_W = CFG_THR_W;
constexpr int MODE = CFG_MODE;
static_assert(MODE != 3 || K == 1, "IntThreshold has one input");

typedef abcn::ResidualAddParams<C, PE, K, S_W, T_W, CFG_SHIFT> Add;
typedef abcn::IntThresholdParams<C, PE, NOUT, THR_W> Thr;
static Add add;
static Thr thr;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    if (MODE != 3) tb::read_act(r, add);
    if (MODE != 0) tb::read_act(r, thr);
    const unsigned long long words = (unsigned long long)reps * PIXELS * NF;
    hls::stream<ap_uint<PE * IN0_W> > in0("in0");
    hls::stream<ap_uint<PE * IN1_W> > in1("in1");
    hls::stream<Thr::out_t> bits("bits");
    hls::stream<ap_uint<PE * OUT_W> > sum("sum");
    tb::read_words(r, in0, words);
    if (K == 2) tb::read_words(r, in1, words);
    r.expect_end();
    abcn::IterCounter cnt;
#if CFG_MODE == 0 && CFG_K == 2
    abcn::ResidualAdd<C, PE, PIXELS, IN0_W, IN1_W, OUT_W>(in0, in1, sum, add, reps, &cnt);
#elif CFG_MODE == 0
    abcn::ResidualAdd<C, PE, PIXELS, IN0_W, OUT_W>(in0, sum, add, reps, &cnt);
#elif CFG_MODE == 1 && CFG_K == 2
    abcn::ResidualAddThreshold<C, PE, PIXELS, IN0_W, IN1_W>(in0, in1, bits, add, thr, reps, &cnt);
#elif CFG_MODE == 1
    abcn::ResidualAddThreshold<C, PE, PIXELS, IN0_W>(in0, bits, add, thr, reps, &cnt);
#elif CFG_MODE == 2 && CFG_K == 2
    abcn::ResidualAddThresholdSum<C, PE, PIXELS, IN0_W, IN1_W, OUT_W>(in0, in1, bits, sum, add, thr, reps, &cnt);
#elif CFG_MODE == 2
    abcn::ResidualAddThresholdSum<C, PE, PIXELS, IN0_W, OUT_W>(in0, bits, sum, add, thr, reps, &cnt);
#else
    abcn::IntThreshold<C, PE, PIXELS, IN0_W>(in0, bits, thr, reps, &cnt);
#endif
    tb::expect_empty(in0, "input 0");
    tb::expect_empty(in1, "input 1");
    tb::drain(bits, MODE == 0 ? 0 : words, w, "bits");
    tb::drain(sum, (MODE == 0 || MODE == 2) ? words : 0, w, "sum");
    w.counter(cnt);
    return 0;
}
