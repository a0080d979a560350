// Testbench: abcn::DuplicateStreams. Config: CFG_WORD_W CFG_WORDS (words per image).
// Input : reps, reps*WORDS words. Output: the words of output 0, then those of output 1, counter.
#include "tb_common.hpp"

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    constexpr int WORD_W = CFG_WORD_W;
    constexpr unsigned long long WORDS = CFG_WORDS;
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    hls::stream<ap_uint<WORD_W> > in("in"), out0("out0"), out1("out1");
    tb::read_words(r, in, reps * WORDS);
    r.expect_end();
    abcn::IterCounter cnt;
    abcn::DuplicateStreams<WORD_W, WORDS>(in, out0, out1, reps, &cnt);
    tb::expect_empty(in, "input");
    tb::drain(out0, reps * WORDS, w, "output 0");
    tb::drain(out1, reps * WORDS, w, "output 1");
    w.counter(cnt);
    return 0;
}
