// Testbench: abcn::MultiBaseThresholdStream with MultiBaseThreshold (CFG_ACT=1) or
// MultiBaseAccumulate (2).
// Config: CFG_MH CFG_PE CFG_M CFG_N CFG_DW CFG_DOT_MAX CFG_NOUT CFG_A_W CFG_B_W CFG_ACT.
// Input : vectors, activation params, vectors*MH/PE dot words (PE*M*N*DW bits).
// Output: vectors*MH/PE words + counter.
#include "tb_common.hpp"

constexpr unsigned MH = CFG_MH, PE = CFG_PE, M = CFG_M, N = CFG_N, NOUT = CFG_NOUT, NF = MH / PE;
constexpr int DW = CFG_DW, A_W = CFG_A_W, B_W = CFG_B_W;
constexpr unsigned long long DOT_MAX = CFG_DOT_MAX;

#if CFG_ACT == 1
typedef abcn::MultiBaseThreshold<MH, PE, M, N, NOUT, DOT_MAX, A_W, B_W> Act;
#else
typedef abcn::MultiBaseAccumulate<MH, PE, M, N, DOT_MAX, A_W, B_W> Act;
#endif
static Act act;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned vectors = (unsigned)r.integer("vectors");
    tb::read_act(r, act);
    hls::stream<ap_uint<PE * M * N * DW> > in("in");
    hls::stream<typename Act::out_t> out("out");
    tb::read_words(r, in, (unsigned long long)vectors * NF);
    r.expect_end();
    abcn::IterCounter cnt;
    abcn::MultiBaseThresholdStream<MH, PE, M, N, DW>(in, out, act, vectors, &cnt);
    tb::expect_empty(in, "input");
    tb::drain(out, (unsigned long long)vectors * NF, w, "output");
    w.counter(cnt);
    return 0;
}
