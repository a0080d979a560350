// XNOR-popcount matrix-vector unit (multi-base), folded by PE and SIMD.
#ifndef ABCN_XNOR_MVU_HPP
#define ABCN_XNOR_MVU_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"
#include "pad_correction.hpp"
#include "multibase_threshold.hpp"

#if ABCN_CSIM_FAST
#include <cstddef>
#include <vector>
#endif

namespace abcn {

// |dot_mn| <= MW for a binary dot product of length MW.
constexpr unsigned long long xnor_dot_max(unsigned mw) { return mw; }
// Signed width of dot_mn = 2*popcount - MW in [-MW, MW].
constexpr unsigned xnor_dot_bits(unsigned mw) { return bits_signed_sym(mw); }

// Binary weights of M weight bases, folded for PE and SIMD.
//   word(m, pe, nf*SF + sf) bit s  =  B_m[o][k]  with  o = nf*PE + pe,  k = sf*SIMD + s,
//   bit 1 = +1, bit 0 = -1; SF = MW/SIMD, NF = MH/PE, TILES = NF*SF.
// Stored as rom_word<SIMD>::type w[M][PE][TILES] (ap_uint<SIMD> in synthesis, see common.hpp).
// For HLS, partition w completely in dims 1 and 2 at the top level (one ROM per (m, pe)).
template <unsigned SIMD, unsigned PE, unsigned M, unsigned TILES>
struct BinaryWeights {
    typedef rom_word<(int)SIMD> rom;
    typename rom::type w[M][PE][TILES];
    ap_uint<SIMD> word(unsigned m, unsigned pe, unsigned tile) const {
#pragma HLS INLINE
        return rom::get(w[m][pe][tile]);
    }
    void set(unsigned m, unsigned pe, unsigned tile, const ap_uint<SIMD> &x) { w[m][pe][tile] = rom::make(x); }
};

#if ABCN_CSIM_FAST
// C-simulation implementation of XnorMVU: identical outputs, stream reads/writes and activation
// calls; the counter advances by SF per output word actually written (the SF pipelined iterations
// that produce it in the synthesizable loop). Per call, every (channel, weight base) row and, per vector, every
// input base is laid out as one contiguous MW-bit vector (zero padded to 64-bit chunks), so that a
// dot product is ceil(MW/64) XOR-popcounts whatever the folding:
//     dot = MW - 2 * popcount(x XOR w)      (= 2 * popcount(XNOR) - MW on the MW real bits).
// Vectors are processed in blocks of VB (a weight chunk is used for VB vectors at once, which the
// compiler vectorises); C simulation runs the kernels of a dataflow one after the other, so every
// vector of the call is already in the input stream, and the outputs are written in the original
// order (vector by vector, neuron fold by neuron fold). Only local state: reentrant, so a batch can
// be simulated on several threads. Never synthesised.
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned N, class TA, class PC>
void XnorMVU_csim(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<typename TA::out_t> &out,
                  const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights,
                  const TA &act, const PC &corr, unsigned reps, IterCounter *counter) {
    typedef typename BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)>::rom rom;
    constexpr unsigned SF = MW / SIMD;
    constexpr unsigned NF = MH / PE;
    constexpr unsigned CH = (SIMD + 63) / 64;  // 64-bit chunks per SIMD slice
    constexpr unsigned RW = (MW + 63) / 64;    // 64-bit chunks per MW-bit row
    constexpr unsigned VB = 8;                 // vectors per block
    constexpr int DW = (int)xnor_dot_bits(MW);
    // rows[(o * M + m) * RW + r]: weight base m of output channel o, bit k = element k
    std::vector<unsigned long long> rows((std::size_t)MH * M * RW, 0ull);
    for (unsigned nf = 0; nf < NF; nf++)
        for (unsigned pe = 0; pe < PE; pe++)
            for (unsigned m = 0; m < M; m++) {
                unsigned long long *dst = &rows[((std::size_t)(nf * PE + pe) * M + m) * RW];
                for (unsigned sf = 0; sf < SF; sf++)
                    for (unsigned c = 0; c < CH; c++) {
                        const unsigned len = (c * 64 + 64 <= SIMD) ? 64u : SIMD - c * 64;
                        csim_put_bits(dst, sf * SIMD + c * 64, rom::chunk(weights.w[m][pe][nf * SF + sf], c), len);
                    }
            }
    std::vector<unsigned long long> xrow((std::size_t)N * RW);     // one vector, per input base
    unsigned long long xw[(N * SIMD + 63) / 64 + 1];               // one input word, and a zero chunk
    xw[(N * SIMD + 63) / 64] = 0;
    std::vector<unsigned long long> xs((std::size_t)N * RW * VB);  // a block: xs[(n*RW + k)*VB + v]
    std::vector<int> dbuf((std::size_t)MH * M * N * VB);           // dots of the block: [(o*M + m)*N + n][v]
    PixelCounter<PC::OFM_H, PC::OFM_W> pix;
    typedef csim_act<TA, DW> NAT;
    std::vector<unsigned long long> words((std::size_t)NF * NAT::OC * VB);  // native activation: [(nf*OC + c)*VB + v]
    const NAT nat(act);
    for (unsigned r0 = 0; r0 < reps; r0 += VB) {
        const unsigned nb = (reps - r0 < VB) ? reps - r0 : VB;
        for (std::size_t i = 0; i < xs.size(); i++) xs[i] = 0;
        for (unsigned v = 0; v < nb; v++) {
            for (std::size_t i = 0; i < xrow.size(); i++) xrow[i] = 0;
            for (unsigned sf = 0; sf < SF; sf++) {
                csim_load_chunks(in.read(), xw);  // the word's chunks (a range select per field costs ~100 ns)
                for (unsigned n = 0; n < N; n++)
                    for (unsigned c = 0; c < CH; c++) {
                        const unsigned lo = n * SIMD + c * 64;
                        const unsigned len = (c * 64 + 64 <= SIMD) ? 64u : SIMD - c * 64;
                        csim_put_bits(&xrow[(std::size_t)n * RW], sf * SIMD + c * 64, csim_get_bits(xw, lo, len), len);
                    }
            }
            for (unsigned i = 0; i < N * RW; i++) xs[(std::size_t)i * VB + v] = xrow[i];
        }
        for (unsigned o = 0; o < MH; o++)
            for (unsigned m = 0; m < M; m++) {
                const unsigned long long *w = &rows[((std::size_t)o * M + m) * RW];
                for (unsigned n = 0; n < N; n++) {
                    unsigned long long cnt[VB];
                    for (unsigned v = 0; v < VB; v++) cnt[v] = 0;
                    for (unsigned k = 0; k < RW; k++) {
                        const unsigned long long wk = w[k];
                        const unsigned long long *xk = &xs[((std::size_t)n * RW + k) * VB];
#pragma GCC unroll 1
                        for (unsigned v = 0; v < VB; v++) cnt[v] += (unsigned long long)__builtin_popcountll(wk ^ xk[v]);
                    }
                    int *d = &dbuf[(((std::size_t)o * M + m) * N + n) * VB];
                    for (unsigned v = 0; v < VB; v++) d[v] = (int)MW - 2 * (int)cnt[v];
                }
            }
        if (NAT::native && !PC::enabled) {
            // the M*N products and the thresholds in native integers (csim_act), the whole block at once
            for (unsigned nf = 0; nf < NF; nf++)
                nat.template activate_block<VB>(nf, &dbuf[(std::size_t)nf * PE * M * N * VB], &words[(std::size_t)nf * NAT::OC * VB]);
            for (unsigned v = 0; v < nb; v++) {
                for (unsigned nf = 0; nf < NF; nf++) {
                    out.write(NAT::template word<VB>(&words[(std::size_t)nf * NAT::OC * VB], v));
                    if (counter) counter->iters += SF;
                }
                pix.next();
            }
            continue;
        }
        for (unsigned v = 0; v < nb; v++) {
            for (unsigned nf = 0; nf < NF; nf++) {
                ap_int<DW> dots[PE][M][N];
                for (unsigned pe = 0; pe < PE; pe++)
                    for (unsigned m = 0; m < M; m++)
                        for (unsigned n = 0; n < N; n++)
                            dots[pe][m][n] = dbuf[((((std::size_t)nf * PE + pe) * M + m) * N + n) * VB + v];
                if (PC::enabled) corr.template apply<NF, PE, M, N, DW>(nf, pix.y, pix.x, dots);
                out.write(act.activate(nf, dots));
                // this output word is the synthesizable loop's SF iterations of (vector v, fold nf)
                if (counter) counter->iters += SF;
            }
            pix.next();
        }
    }
}
#endif


// XnorMVU: for every input vector (one output pixel's window, MW bits per activation base) and
// every output channel o, the M*N dot products
//     dot_mn[o] = 2*popcount(XNOR(x_n, B_m[o])) - MW
// handed to the activation TA (MultiBaseThreshold, MultiBaseAccumulate or DotPassThrough) as
// ap_int dots[PE][M][N] once per neuron fold.
//
//   MW   bits per base of the input vector (K*K*C for a conv, the flattened size for an FC)
//   MH   output channels;  SIMD | MW;  PE | MH
//   M, N weight bases, activation bases
// Input : SF = MW/SIMD words of N*SIMD bits per vector (base-major: bit n*SIMD + s = base n,
//         element sf*SIMD + s), i.e. the SlidingWindow output for SIMD | C.
// Output: NF = MH/PE words TA::out_t per vector. reps = number of vectors (pixels x images).
// Schedule: one pipelined loop of NF*SF iterations (II=1) per vector; the input vector is read
// during the first neuron fold and replayed from a SF-word buffer for the others.
//
// XnorConvMVU is XnorMVU for a zero-padded convolution: PC (ZeroPadCorrection, pad_correction.hpp)
// adds each weight base's border correction to the dots of the border pixels before TA; the vectors
// must be the output pixels of PC's map in (y, x) order. XnorMVU is XnorMVU_core with
// NoPadCorrection.
template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned N, class TA, class PC>
void XnorMVU_core(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<typename TA::out_t> &out,
                  const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights, const TA &act,
                  const PC &corr, unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    static_assert(MW % SIMD == 0, "SIMD must divide MW");
    static_assert(MH % PE == 0, "PE must divide MH");
    constexpr unsigned SF = MW / SIMD;
    constexpr unsigned NF = MH / PE;
    constexpr int PC_W = (int)bits_unsigned(MW);
    constexpr int DW = (int)xnor_dot_bits(MW);

    ABCN_COUNT_CALL();
#if ABCN_CSIM_FAST
    // C simulation: the same schedule and counts on native 64-bit words (bit-exact).
    XnorMVU_csim<MW, MH, SIMD, PE, M, N>(in, out, weights, act, corr, reps ABCN_COUNTER_ARG(counter));
    return;
#endif
    ap_uint<N * SIMD> inbuf[SF];
    ap_uint<PC_W> pc[PE][M][N];
#pragma HLS ARRAY_PARTITION variable = pc complete dim = 0

    // One flat pipelined loop over all vectors (no pipeline flush between output pixels).
    const unsigned long long total = (unsigned long long)reps * NF * SF;
    unsigned sf = 0, nf = 0, tile = 0;
    PixelCounter<PC::OFM_H, PC::OFM_W> pix;  // output pixel of the vector (PC::enabled only)
    for (unsigned long long i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
        // inbuf[sf] is written in neuron fold 0 and read back SF iterations later (fold 1, and the
        // next vector's fold 0 overwrites it SF iterations after the last read)
#pragma HLS DEPENDENCE variable = inbuf inter RAW distance = SF true
        ABCN_COUNT_ITER();
        ap_uint<N * SIMD> x;
        if (nf == 0) {
            x = in.read();
            inbuf[sf] = x;
        } else {
            x = inbuf[sf];
        }
        ap_uint<SIMD> xs[N];  // the N bases' slices (wires)
#pragma HLS ARRAY_PARTITION variable = xs complete dim = 0
        for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
            xs[n] = x((n + 1) * SIMD - 1, n * SIMD);
        }
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            for (unsigned m = 0; m < M; m++) {
#pragma HLS UNROLL
                const ap_uint<SIMD> w = weights.word(m, pe, tile);
                for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                    // popcount accumulator: PC_W-bit state, the add in a C integer (an ap_uint add
                    // costs tens of ns in C simulation; the bits above PC_W drive nothing)
                    const unsigned long long prev = (sf == 0) ? 0ull : pc[pe][m][n].to_uint64();
                    pc[pe][m][n] = ap_uint<PC_W>(prev + popcount_xnor<SIMD>(w, xs[n]).to_uint64());
                }
            }
        }
        tile++;
        if (++sf == SF) {
            ap_int<DW> dots[PE][M][N];
#pragma HLS ARRAY_PARTITION variable = dots complete dim = 0
            for (unsigned pe = 0; pe < PE; pe++)
                for (unsigned m = 0; m < M; m++)
                    for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                        const ap_int<DW + 1> twice = ap_int<DW + 1>(pc[pe][m][n]) << 1;
                        dots[pe][m][n] = twice - ap_int<DW + 1>(MW);
                    }
            if (PC::enabled) corr.template apply<NF, PE, M, N, DW>(nf, pix.y, pix.x, dots);
            out.write(act.activate(nf, dots));
            sf = 0;
            if (++nf == NF) {
                nf = 0;
                tile = 0;
                if (PC::enabled) pix.next();
            }
        }
    }
}

template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned N, class TA>
void XnorMVU(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<typename TA::out_t> &out,
             const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights, const TA &act,
             unsigned reps ABCN_COUNTER_PARAM) {
    XnorMVU_core<MW, MH, SIMD, PE, M, N>(in, out, weights, act, NoPadCorrection(), reps ABCN_COUNTER_ARG(counter));
}

template <unsigned MW, unsigned MH, unsigned SIMD, unsigned PE, unsigned M, unsigned N, class TA, class PC>
void XnorConvMVU(hls::stream<ap_uint<N * SIMD> > &in, hls::stream<typename TA::out_t> &out,
                 const BinaryWeights<SIMD, PE, M, (MH / PE) * (MW / SIMD)> &weights, const TA &act,
                 const PC &corr, unsigned reps ABCN_COUNTER_PARAM) {
    static_assert(PC::enabled, "XnorConvMVU takes a ZeroPadCorrection (use XnorMVU without one)");
    XnorMVU_core<MW, MH, SIMD, PE, M, N>(in, out, weights, act, corr, reps ABCN_COUNTER_ARG(counter));
}

} // namespace abcn

#endif // ABCN_XNOR_MVU_HPP
