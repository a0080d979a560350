// Testbench: abcn::MultiBaseWidthConverter. Config: CFG_N CFG_IN_W CFG_OUT_W CFG_NUM_IN_WORDS.
// Input : reps, reps*NUM_IN_WORDS words (N*IN_W bits). Output: the converted words + counter.
#include "tb_common.hpp"

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    constexpr unsigned N = CFG_N, IN_W = CFG_IN_W, OUT_W = CFG_OUT_W, NUM_IN = CFG_NUM_IN_WORDS;
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    hls::stream<ap_uint<N * IN_W> > in("in");
    hls::stream<ap_uint<N * OUT_W> > out("out");
    tb::read_words(r, in, (unsigned long long)reps * NUM_IN);
    r.expect_end();
    abcn::IterCounter cnt;
    abcn::MultiBaseWidthConverter<N, IN_W, OUT_W, NUM_IN>(in, out, reps, &cnt);
    tb::expect_empty(in, "input");
    tb::drain(out, (unsigned long long)reps * NUM_IN * IN_W / OUT_W, w, "output");
    w.counter(cnt);
    return 0;
}
