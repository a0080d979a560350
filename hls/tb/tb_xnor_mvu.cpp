// Testbench: abcn::XnorMVU with DotPassThrough (CFG_ACT=0), MultiBaseThreshold (1) or, through
// XnorLogits, MultiBaseAccumulate (2).
// Config: CFG_MW CFG_MH CFG_SIMD CFG_PE CFG_M CFG_N CFG_ACT [CFG_NOUT CFG_A_W CFG_B_W].
// Input : vectors, weights, activation params, vectors*MW/SIMD input words (N*SIMD bits).
// Output: vectors*MH/PE words + counter.
#include "tb_common.hpp"

#ifndef CFG_NOUT
#define CFG_NOUT 1
#endif
#ifndef CFG_A_W
#define CFG_A_W 4
#endif
#ifndef CFG_B_W
#define CFG_B_W 4
#endif

constexpr unsigned MW = CFG_MW, MH = CFG_MH, SIMD = CFG_SIMD, PE = CFG_PE, M = CFG_M, N = CFG_N;
constexpr unsigned NOUT = CFG_NOUT, SF = MW / SIMD, NF = MH / PE;
constexpr int A_W = CFG_A_W, B_W = CFG_B_W;
constexpr int DW = (int)abcn::xnor_dot_bits(MW);
constexpr int ACC_W = (int)abcn::mb_acc_bits(M, N, abcn::xnor_dot_max(MW), A_W, B_W);

#if CFG_ACT == 0
typedef abcn::DotPassThrough<PE, M, N, DW> Act;
#elif CFG_ACT == 1
typedef abcn::MultiBaseThreshold<MH, PE, M, N, NOUT, abcn::xnor_dot_max(MW), A_W, B_W> Act;
#else
typedef abcn::MultiBaseAccumulate<MH, PE, M, N, abcn::xnor_dot_max(MW), A_W, B_W, ACC_W> Act;
#endif

static abcn::BinaryWeights<SIMD, PE, M, NF * SF> weights;
static Act act;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned vectors = (unsigned)r.integer("vectors");
    tb::read_weights(r, weights);
    tb::read_act(r, act);
    hls::stream<ap_uint<N * SIMD> > in("in");
    hls::stream<typename Act::out_t> out("out");
    tb::read_words(r, in, (unsigned long long)vectors * SF);
    r.expect_end();
    abcn::IterCounter cnt;
#if CFG_ACT == 2
    abcn::XnorLogits<MW, MH, SIMD, PE, M, N, A_W, B_W, ACC_W>(in, out, weights, act, vectors, &cnt);
#else
    abcn::XnorMVU<MW, MH, SIMD, PE, M, N>(in, out, weights, act, vectors, &cnt);
#endif
    tb::expect_empty(in, "input");
    tb::drain(out, (unsigned long long)vectors * NF, w, "output");
    w.counter(cnt);
    return 0;
}
