// Testbench: abcn::BitMaxPool. Config: CFG_IFM_H CFG_IFM_W CFG_CF CFG_WORD_W CFG_POOL.
// Input : reps, reps*IFM_H*IFM_W*CF words. Output: reps*(IFM_H/POOL)*(IFM_W/POOL)*CF words + counter.
#include "tb_common.hpp"

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    constexpr unsigned IFM_H = CFG_IFM_H, IFM_W = CFG_IFM_W, CF = CFG_CF, POOL = CFG_POOL;
    constexpr int WORD_W = CFG_WORD_W;
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    hls::stream<ap_uint<WORD_W> > in("in"), out("out");
    tb::read_words(r, in, (unsigned long long)reps * IFM_H * IFM_W * CF);
    r.expect_end();
    abcn::IterCounter cnt;
    abcn::BitMaxPool<IFM_H, IFM_W, CF, WORD_W, POOL>(in, out, reps, &cnt);
    tb::expect_empty(in, "input");
    tb::drain(out, (unsigned long long)reps * (IFM_H / POOL) * (IFM_W / POOL) * CF, w, "output");
    w.counter(cnt);
    return 0;
}
