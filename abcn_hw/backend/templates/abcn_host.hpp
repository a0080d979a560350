// abcn-hw backend glue, C simulation only (not part of the abcn kernel library, not synthesised;
// copied into each generated project and compiled into the C-simulation library with
// tb/csim_host.cpp, which abcn_hw/backend/host_native.py generates from host/pre.onnx and
// host/post.onnx).
//
// The host steps of a batch in native code: the worker threads take blocks of BLOCK consecutive
// images in turn (the next block goes to the first thread free, so a thread that the machine's
// load slows down does not hold the batch up) and quantise and pack them (Design::pre), run them
// through the design (abcn_csim_batch of tb/csim_driver.cpp, one thread), and unpack and
// post-process the output words (Design::post). Memory stays bounded (a block of words per thread).
//
// Stream layouts (host/io.json, hls/README.md): words travel as little-endian uint64 chunks
// (chunk c = bits 64c..64c+63); integer input fields of IN_BITS bits, two's complement, field s of
// a word at bits [s*IN_BITS, (s+1)*IN_BITS); bit inputs one bit per element; output fields of
// ACC_W bits, field pe of word (vector v, fold nf) = channel nf*PE + pe of vector v.
#ifndef ABCN_HOST_HPP
#define ABCN_HOST_HPP

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

// float32 arithmetic must be evaluated in float32, one rounding per operation (as onnxruntime's
// kernels do): no x87 excess precision, no fast-math; -ffp-contract=off is on the command line.
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "the native host code needs FLT_EVAL_METHOD == 0 (float32 evaluated in float32)"
#endif
#if defined(__FAST_MATH__)
#error "the native host code must not be built with -ffast-math"
#endif
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the stream words are little-endian uint64 chunks"
#endif

extern "C" int abcn_csim_batch(const std::uint64_t *in, std::uint64_t images, std::uint64_t *out, unsigned threads,
                               std::uint64_t *counts, double *seconds);
extern "C" unsigned long long abcn_csim_info(unsigned what);

namespace abcn_host {

// return codes beyond abcn_csim_batch's 1..3
enum { ERR_NONFINITE = 4, ERR_RANGE = 5, ERR_MISMATCH = 6 };
static const unsigned ABI_VERSION = 1;
static const unsigned BLOCK = 256;

// onnxruntime's Clip: max(x, lo) then min(., hi), keeping x when it equals the bound (-0.0 stays)
inline float clip_lo(float x, float lo) { return x < lo ? lo : x; }
inline float clip_hi(float x, float hi) { return x > hi ? hi : x; }

template <unsigned N>
inline bool all_finite(const float *x) {
    unsigned bad = 0;
    for (unsigned i = 0; i < N; i++) bad |= !(std::fabs(x[i]) <= FLT_MAX);  // NaN compares false
    return bad == 0;
}

// Integer input: field k (word k / SIMD, field k % SIMD) = element IDENTITY ? k : order[k]; values
// outside lo..hi are refused (ERR_RANGE), as the Python packer does.
template <unsigned WORDS, unsigned SIMD, unsigned BITS, unsigned CH, bool IDENTITY>
inline int pack_int(const std::int32_t *a, const std::uint32_t *order, std::uint64_t *w, long long lo, long long hi) {
    const std::uint64_t mask = BITS >= 64 ? ~0ull : ((1ull << (BITS % 64)) - 1);
    std::memset(w, 0, sizeof(std::uint64_t) * WORDS * CH);
    for (unsigned k = 0; k < WORDS * SIMD; k++) {
        const std::int32_t v = a[IDENTITY ? k : order[k]];
        if (v < lo || v > hi) return ERR_RANGE;
        const std::uint64_t u = (std::uint64_t)(std::int64_t)v & mask;
        const unsigned pos = (k % SIMD) * BITS;
        std::uint64_t *word = w + (std::size_t)(k / SIMD) * CH;
        word[pos / 64] |= u << (pos % 64);
        if (pos % 64 + BITS > 64) word[pos / 64 + 1] |= u >> ((64 - pos % 64) % 64);  // (% 64: no shift by 64 in dead code)
    }
    return 0;
}

// Bit input: bit j of word k = element k * WIDTH + j (IDENTITY) or order[k * WIDTH + j]; elements
// are 0 / 1 bytes. The identity layout packs 8 bytes per multiply (byte i -> bit i).
template <unsigned WORDS, unsigned WIDTH, unsigned CH, bool IDENTITY>
inline void pack_bits(const std::uint8_t *a, const std::uint32_t *order, std::uint64_t *w) {
    for (unsigned k = 0; k < WORDS; k++) {
        for (unsigned c = 0; c < CH; c++) {
            const unsigned lo = 64 * c, n = WIDTH - lo < 64 ? WIDTH - lo : 64;
            const std::size_t base = (std::size_t)k * WIDTH + lo;
            std::uint64_t word = 0;
            unsigned j = 0;
            if (IDENTITY) {
                for (; j + 8 <= n; j += 8) {
                    std::uint64_t v;
                    std::memcpy(&v, a + base + j, 8);
                    word |= ((v * 0x0102040810204080ull) >> 56) << j;
                }
                for (; j < n; j++) word |= (std::uint64_t)(a[base + j] & 1u) << j;
            } else {
                for (; j < n; j++) word |= (std::uint64_t)(a[order[base + j]] & 1u) << j;
            }
            w[(std::size_t)k * CH + c] = word;
        }
    }
}

// Output words -> accumulators acc[channel * VECTORS + v] (sign-extended ACC_W-bit fields).
template <unsigned VECTORS, unsigned NF, unsigned PE, unsigned ACC_W, unsigned CH>
inline void unpack_acc(const std::uint64_t *w, std::int64_t *acc) {
    for (unsigned v = 0; v < VECTORS; v++) {
        for (unsigned nf = 0; nf < NF; nf++) {
            const std::uint64_t *word = w + (std::size_t)(v * NF + nf) * CH;
            for (unsigned pe = 0; pe < PE; pe++) {
                const unsigned pos = pe * ACC_W;
                std::uint64_t u = word[pos / 64] >> (pos % 64);
                if (pos % 64 + ACC_W > 64) u |= word[pos / 64 + 1] << ((64 - pos % 64) % 64);
                const unsigned sh = 64 - ACC_W;
                acc[(std::size_t)(nf * PE + pe) * VECTORS + v] = (std::int64_t)(u << sh) >> sh;
            }
        }
    }
}

template <class D>
inline bool sizes_match() {
    return abcn_csim_info(0) == D::IN_WORDS && abcn_csim_info(1) == D::IN_CH && abcn_csim_info(2) == D::OUT_WORDS &&
           abcn_csim_info(3) == D::OUT_CH && abcn_csim_info(4) == D::STAGES;
}

// The blocks of a batch, handed out in increasing order. After an error no block is handed out:
// every earlier block is already in a worker's hands, so the first image with an error is the
// smallest of the workers' first errors.
struct Blocks {
    std::atomic<std::uint64_t> next;
    std::atomic<bool> stop;
    std::uint64_t images;
    unsigned block;  // images per block (at most BLOCK)
    // the first image of the next block (its size: n), false when none is left
    bool take(std::uint64_t &first, unsigned &n) {
        if (stop.load(std::memory_order_relaxed)) return false;
        first = next.fetch_add(block, std::memory_order_relaxed);
        if (first >= images) return false;
        n = (unsigned)(images - first < block ? images - first : block);
        return true;
    }
};

template <class D>
struct Worker {
    const float *x;
    float *y;
    std::int64_t *acc;
    Blocks *blocks;
    std::uint64_t bad;
    std::uint64_t counts[1 + 2 * D::STAGES];
    double seconds;
    int error;

    void fail(int rc, std::uint64_t image) {
        error = rc;
        bad = image;
        blocks->stop.store(true, std::memory_order_relaxed);
    }

    void run() {
        const std::size_t in_words = (std::size_t)D::IN_WORDS * D::IN_CH, out_words = (std::size_t)D::OUT_WORDS * D::OUT_CH;
        std::vector<std::uint64_t> in(BLOCK * in_words), out(BLOCK * out_words);
        std::unique_ptr<typename D::Scratch> s(new typename D::Scratch());
        std::uint64_t c[1 + 2 * D::STAGES];
        std::uint64_t img;
        unsigned n;
        while (blocks->take(img, n)) {
            for (unsigned i = 0; i < n; i++) {
                const int rc = D::pre(x + (std::size_t)(img + i) * D::IN_FLOATS, in.data() + i * in_words, *s);
                if (rc) {
                    fail(rc, img + i);
                    return;
                }
            }
            double secs = 0.0;
            const int rc = abcn_csim_batch(in.data(), n, out.data(), 1, c, &secs);
            if (rc) {
                fail(rc, img);
                return;
            }
            seconds += secs;
            for (unsigned k = 0; k < 1 + 2 * D::STAGES; k++) counts[k] += c[k];
            for (unsigned i = 0; i < n; i++) {
                const int prc = D::post(out.data() + i * out_words, y + (std::size_t)(img + i) * D::OUT_FLOATS,
                                        acc + (std::size_t)(img + i) * D::ACC, *s);
                if (prc) {
                    fail(prc, img + i);
                    return;
                }
            }
        }
    }
};

// The whole batch: x (images * IN_FLOATS float32) -> y (images * OUT_FLOATS float32) and acc
// (images * ACC int64); counts and *seconds as abcn_csim_batch (seconds: the longest time a worker
// spent in the simulation loop). Returns 0 or an error code, *bad = the first image it concerns.
template <class D>
int run_batch(const float *x, std::uint64_t images, float *y, std::int64_t *acc, unsigned threads,
              std::uint64_t *counts, double *seconds, std::uint64_t *bad) {
    *seconds = 0.0;
    *bad = 0;
    for (unsigned k = 0; k < 1 + 2 * D::STAGES; k++) counts[k] = 0;
    if (!sizes_match<D>()) return ERR_MISMATCH;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    if (threads > images) threads = images ? (unsigned)images : 1u;
    Blocks blocks;
    blocks.next.store(0);
    blocks.stop.store(false);
    blocks.images = images;
    // about 8 blocks per thread (so that the last ones even out the threads), at most BLOCK images each
    const std::uint64_t per = images / (8ull * threads);
    blocks.block = per < 1 ? 1u : per > BLOCK ? BLOCK : (unsigned)per;
    std::vector<Worker<D> > workers(threads);
    for (unsigned t = 0; t < threads; t++) {
        Worker<D> &w = workers[t];
        w.x = x;
        w.y = y;
        w.acc = acc;
        w.blocks = &blocks;
        w.bad = 0;
        w.seconds = 0.0;
        w.error = 0;
        for (unsigned k = 0; k < 1 + 2 * D::STAGES; k++) w.counts[k] = 0;
    }
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; t++) pool.emplace_back(&Worker<D>::run, &workers[t]);
    workers[0].run();
    for (std::size_t t = 0; t < pool.size(); t++) pool[t].join();
    int error = 0;
    for (unsigned t = 0; t < threads; t++) {
        if (workers[t].error && (!error || workers[t].bad < *bad)) {
            error = workers[t].error;
            *bad = workers[t].bad;
        }
    }
    if (error) return error;
    for (unsigned t = 0; t < threads; t++) {
        if (workers[t].seconds > *seconds) *seconds = workers[t].seconds;
        for (unsigned k = 0; k < 1 + 2 * D::STAGES; k++) counts[k] += workers[t].counts[k];
    }
    return 0;
}

// The two halves on their own (for the tests against host/pre.onnx and host/post.onnx).
template <class D>
int pre_batch(const float *x, std::uint64_t images, std::uint64_t *words, std::uint64_t *bad) {
    std::unique_ptr<typename D::Scratch> s(new typename D::Scratch());
    for (std::uint64_t i = 0; i < images; i++) {
        const int rc = D::pre(x + i * D::IN_FLOATS, words + i * D::IN_WORDS * D::IN_CH, *s);
        if (rc) {
            *bad = i;
            return rc;
        }
    }
    return 0;
}

template <class D>
int post_batch(const std::uint64_t *words, std::uint64_t images, float *y, std::int64_t *acc) {
    std::unique_ptr<typename D::Scratch> s(new typename D::Scratch());
    for (std::uint64_t i = 0; i < images; i++) {
        const int rc = D::post(words + i * D::OUT_WORDS * D::OUT_CH, y + i * D::OUT_FLOATS, acc + i * D::ACC, *s);
        if (rc) return rc;
    }
    return 0;
}

template <class D>
unsigned long long info(unsigned what) {
    const unsigned long long v[4] = {ABI_VERSION, D::IN_FLOATS, D::OUT_FLOATS, D::ACC};
    return what < 4 ? v[what] : 0ull;
}

}  // namespace abcn_host

// The library's entry points for a design D (tb/csim_host.cpp):
//   abcn_csim_host_info(0..3): ABI version, floats in / out per image, accumulators per image
//   abcn_csim_host_batch: run_batch;  abcn_csim_host_pre / abcn_csim_host_post: the halves alone
#define ABCN_HOST_ENTRY_POINTS(D)                                                                              \
    extern "C" unsigned long long abcn_csim_host_info(unsigned what) { return abcn_host::info<D>(what); }      \
    extern "C" int abcn_csim_host_batch(const float *x, std::uint64_t images, float *y, std::int64_t *acc,     \
                                        unsigned threads, std::uint64_t *counts, double *seconds,              \
                                        std::uint64_t *bad) {                                                  \
        return abcn_host::run_batch<D>(x, images, y, acc, threads, counts, seconds, bad);                      \
    }                                                                                                          \
    extern "C" int abcn_csim_host_pre(const float *x, std::uint64_t images, std::uint64_t *words,             \
                                      std::uint64_t *bad) {                                                    \
        return abcn_host::pre_batch<D>(x, images, words, bad);                                                 \
    }                                                                                                          \
    extern "C" int abcn_csim_host_post(const std::uint64_t *words, std::uint64_t images, float *y,            \
                                       std::int64_t *acc) {                                                    \
        return abcn_host::post_batch<D>(words, images, y, acc);                                                \
    }

#endif  // ABCN_HOST_HPP
