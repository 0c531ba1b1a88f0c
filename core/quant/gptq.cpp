#include "core/quant/gptq.h"

#include "core/quant/format.h"
#include "core/quant/ggml.h"
#include "core/quant/gptq_ggml.h"
#include "core/quant/gptq_kernels.h"
#include "core/quant/int_quant.h"
#include "core/util/error.h"
#include "core/util/job.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>

#if defined(__clang__)
#pragma clang fp contract(off) // the ggml levels' values must round as ggml's decoder does
#endif

namespace qs {

namespace gptq_detail {

namespace {
std::atomic<const Kernels*> g_override{nullptr};
}

void overrideKernels(const Kernels* set)
{
    g_override.store(set);
}

const Kernels& kernels()
{
    if (const Kernels* forced = g_override.load(std::memory_order_relaxed))
        return *forced;
    static const Kernels* const best = [] {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("fma"))
            return kernelsAvx512();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            return kernelsAvx2();
#endif
        return kernelsGeneric();
    }();
    return *best;
}

} // namespace gptq_detail

namespace {

using gptq_detail::kernels;

// GPTQ's quantizer on one value: code = clamp(round_half_even(x / scale) + zero, 0, maxq), all float32 as in
// torch (so the same arithmetic as IntGrid::quantize of core/quant/int_quant.cpp).
inline float codeOf(float x, const IntGrid& g)
{
    const float q = std::nearbyint(x / g.scale) + g.zero;
    return std::min(std::max(q, 0.0f), static_cast<float>(g.maxq));
}

IntGrid gridOf(const float* p, int n, const GptqConfig& c)
{
    float lo = 0.0f, hi = 0.0f; // GPTQ's min/max include 0
    for (int i = 0; i < n; ++i) {
        lo = std::min(lo, p[i]);
        hi = std::max(hi, p[i]);
    }
    return intGridFor(lo, hi, c.bits, c.symmetric);
}

void validate(int rows, int cols, const GptqConfig& c)
{
    if (rows <= 0 || cols <= 0)
        throw Error(ErrorCode::BadValue, "GPTQ: empty weight");
    if (c.bits < 2 || c.bits > 8)
        throw Error(ErrorCode::BadValue, "GPTQ: bits must be 2..8, not " + std::to_string(c.bits));
    if (c.groupSize != -1 && c.groupSize <= 0)
        throw Error(ErrorCode::BadValue, "GPTQ: group size must be > 0 or -1 (per channel)");
    if (c.blockSize <= 0)
        throw Error(ErrorCode::BadValue, "GPTQ: block size must be > 0");
    if (!(c.percDamp >= 0.0) || !std::isfinite(c.percDamp))
        throw Error(ErrorCode::BadValue, "GPTQ: dampening must be >= 0");
    if (!c.ggml)
        return;
    const gptq_ggml::Codec* codec = gptq_ggml::codecFor(*c.ggml);
    if (!codec)
        throw Error(ErrorCode::BadValue, std::string("GPTQ cannot quantize into ") + dtypeName(*c.ggml) +
                                             " blocks (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, "
                                             "Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)");
    if (cols % codec->blockValues != 0)
        throw Error(ErrorCode::BadValue, std::string("GPTQ: ") + dtypeName(*c.ggml) + " needs rows of a multiple of " +
                                             std::to_string(codec->blockValues) + " values, not " +
                                             std::to_string(cols));
    if (c.actOrder)
        throw Error(ErrorCode::BadValue,
                    std::string("GPTQ: act-order cannot be used with ") + dtypeName(*c.ggml) +
                        ": a ggml block holds consecutive columns, so the columns must be quantized in order");
    if (!c.importance.empty() && c.importance.size() != size_t(cols))
        throw Error(ErrorCode::BadValue, "GPTQ: the importance vector has " + std::to_string(c.importance.size()) +
                                             " entries, the layer " + std::to_string(cols) + " columns");
}

// The lazy-update block. With a ggml type it is a multiple of the ggml block (rounded up) or a divisor of it
// (a power of two, when smaller: 128 for a 256-value super-block), so a ggml block either lies inside one
// lazy-update block (its values there have every earlier column's update, in-block ones included) or starts
// one (W then holds every earlier column's update): its grid is chosen from exactly updated values.
int sweepBlock(const GptqConfig& c, int cols)
{
    int bs = c.blockSize;
    if (c.ggml)
        if (const auto* codec = gptq_ggml::codecFor(*c.ggml)) {
            const int v = codec->blockValues; // a power of two
            if (bs >= v) {
                bs = (bs + v - 1) / v * v;
            } else {
                int p = 1;
                while (p * 2 <= bs)
                    p *= 2;
                bs = p;
            }
        }
    return std::min(bs, cols);
}

// Everything one run shares between its row chunks.
struct Sweep {
    const GptqConfig* config = nullptr;
    int rows = 0, cols = 0, groups = 1;
    float* work = nullptr;                // rows x cols, permuted columns; updated lazily
    const float* u = nullptr;             // cols x cols upper Cholesky factor of the dampened H^-1
    const std::vector<int32_t>* perm = nullptr;
    const std::vector<IntGrid>* fixedGrids = nullptr; // groups x rows: per channel or static groups
    const gptq_ggml::Codec* codec = nullptr;          // ggml type, else null
    const float* staticSource = nullptr;              // ggml static groups: W before any update
    size_t rowBytes = 0;                              // ggml: bytes of one row of blocks
    int bs = 1;                                       // sweepBlock()
    GptqResult* out = nullptr;
    JobControl* job = nullptr;
    std::atomic<int64_t> blocksDone{0};
    int64_t blocksTotal = 1;
    std::mutex lossMutex;
    std::mutex progressMutex;
    int64_t reported = 0; // guarded by progressMutex
};

// One row chunk's state while it sweeps one block (blockSweep calls quantizeColumn for each column).
struct ChunkState {
    Sweep* s = nullptr;
    int r0 = 0, rows = 0, i1 = 0, bs = 0, count = 0; // count: columns of the current block
    float* wc = nullptr;  // the chunk's rows of W (stride cols), as the earlier blocks left them
    float* w1 = nullptr;  // the block's columns (stride bs), updated within the block
    float* err = nullptr; // scaled errors (stride bs)
    std::vector<IntGrid> grid;
    std::vector<float> gridA, gridB; // ggml: rows x sub-blocks, the current block's grids
    double loss = 0;
};

// Records the rounding of row r's value x (column i of the block, original column orig) to `code` = q.
inline void recordValue(ChunkState& st, int r, int i, int orig, float x, float code, float q, float d)
{
    Sweep& s = *st.s;
    const size_t at = size_t(st.r0 + r) * s.cols + orig;
    s.out->dequantized[at] = q;
    s.out->codes[at] = static_cast<uint8_t>(code);
    if (!s.out->rounded.empty())
        s.out->rounded[at] = x;
    st.err[size_t(r) * st.bs + i] = (x - q) / d;
    st.loss += 0.5 * double(x - q) * double(x - q) / (double(d) * d);
}

// quantizeColumn for a ggml type: a block's first column picks the block's grid per row.
void quantizeColumnGgml(ChunkState& st, int i)
{
    Sweep& s = *st.s;
    const GptqConfig& c = *s.config;
    const gptq_ggml::Codec& k = *s.codec;
    const int col = st.i1 + i, inBlock = col % k.blockValues, subs = k.blockValues / k.subValues;
    if (inBlock == 0) {
        const int blk = col / k.blockValues;
        const float* imp = c.importance.empty() ? nullptr : c.importance.data() + col;
        // Inside the lazy-update block: its in-block updated copy; else the block starts here (sweepBlock) and W
        // is up to date.
        const bool inBlock1 = i + k.blockValues <= st.count;
        for (int r = 0; r < st.rows; ++r) {
            const float* src = c.staticGroups ? s.staticSource + size_t(st.r0 + r) * s.cols + col
                               : inBlock1     ? st.w1 + size_t(r) * st.bs + i
                                              : st.wc + size_t(r) * s.cols + col;
            unsigned char* dst = s.out->ggmlBlocks.data() + size_t(st.r0 + r) * s.rowBytes + size_t(blk) * k.blockBytes;
            k.quantize(src, k.blockValues, dst, imp);
            k.grid(dst, &st.gridA[size_t(r) * subs], &st.gridB[size_t(r) * subs]);
        }
    }
    const int sub = inBlock / k.subValues;
    const float d = s.u[int64_t(col) * s.cols + col];
    for (int r = 0; r < st.rows; ++r) {
        const float x = st.w1[size_t(r) * st.bs + i];
        const float a = st.gridA[size_t(r) * subs + sub], b = st.gridB[size_t(r) * subs + sub];
        const int level = gptq_ggml::nearestLevel(k, a, b, x);
        recordValue(st, r, i, col, x, float(level), gptq_ggml::levelValue(k, a, b, level), d);
    }
}

void quantizeColumn(void* ctx, int i)
{
    ChunkState& st = *static_cast<ChunkState*>(ctx);
    Sweep& s = *st.s;
    if (s.codec)
        return quantizeColumnGgml(st, i);
    const GptqConfig& c = *s.config;
    const int64_t ld = s.cols;
    const int col = st.i1 + i, orig = (*s.perm)[col];
    if (c.groupSize > 0 && !c.staticGroups && col % c.groupSize == 0) {
        // From W as the earlier blocks left it (the original reads its big W here, not W1).
        const int g = col / c.groupSize, n = std::min(c.groupSize, s.cols - col);
        for (int r = 0; r < st.rows; ++r) {
            st.grid[r] = gridOf(st.wc + r * ld + col, n, c);
            s.out->scales[size_t(g) * s.rows + st.r0 + r] = st.grid[r].scale;
            s.out->zeros[size_t(g) * s.rows + st.r0 + r] = st.grid[r].zero;
        }
    } else if (c.groupSize > 0 && c.staticGroups) {
        const int g = orig / c.groupSize;
        for (int r = 0; r < st.rows; ++r)
            st.grid[r] = (*s.fixedGrids)[size_t(g) * s.rows + st.r0 + r];
    }
    const float d = s.u[int64_t(col) * ld + col];
    for (int r = 0; r < st.rows; ++r) {
        const float x = st.w1[size_t(r) * st.bs + i];
        const float code = codeOf(x, st.grid[r]);
        recordValue(st, r, i, orig, x, code, st.grid[r].scale * (code - st.grid[r].zero), d);
    }
}

void sweepRows(Sweep& s, int r0, int r1)
{
    const GptqConfig& c = *s.config;
    const int cols = s.cols, bs = s.bs;
    const int64_t ld = cols;
    ChunkState st;
    st.s = &s;
    st.r0 = r0;
    st.rows = r1 - r0;
    st.bs = bs;
    st.wc = s.work + int64_t(r0) * ld;
    std::vector<float> w1(static_cast<size_t>(st.rows) * bs), err(static_cast<size_t>(st.rows) * bs);
    st.w1 = w1.data();
    st.err = err.data();
    st.grid.resize(static_cast<size_t>(st.rows));
    if (s.codec) {
        const size_t n = size_t(st.rows) * size_t(s.codec->blockValues / s.codec->subValues);
        st.gridA.resize(n);
        st.gridB.resize(n);
    } else if (c.groupSize < 0) {
        for (int r = 0; r < st.rows; ++r)
            st.grid[r] = (*s.fixedGrids)[r0 + r];
    }
    for (int i1 = 0; i1 < cols; i1 += bs) {
        checkCancel(s.job);
        const int i2 = std::min(i1 + bs, cols), count = i2 - i1;
        st.i1 = i1;
        st.count = count;
        for (int r = 0; r < st.rows; ++r)
            std::memcpy(&w1[size_t(r) * bs], st.wc + r * ld + i1, sizeof(float) * count);
        kernels().blockSweep(w1.data(), bs, err.data(), bs, s.u + int64_t(i1) * ld + i1, ld, st.rows, count,
                             quantizeColumn, &st);
        // The lazy update of the rest of the rows: W[:, i2:] -= Err1 * Hinv[i1:i2, i2:].
        if (i2 < cols)
            kernels().gemmSub(st.wc + i2, ld, err.data(), bs, s.u + int64_t(i1) * ld + i2, ld, st.rows, count,
                              cols - i2);
        const int64_t done = s.blocksDone.fetch_add(st.rows) + st.rows;
        if (s.job) {
            std::lock_guard lock(s.progressMutex); // reports from the workers in order
            if (done > s.reported) {
                s.reported = done;
                s.job->report(double(done) / double(s.blocksTotal));
            }
        }
    }
    if (s.codec) // the levels into the blocks, next to the quantizer's scales
        for (int r = r0; r < r1; ++r)
            for (int b = 0; b < cols / s.codec->blockValues; ++b)
                s.codec->pack(s.out->ggmlBlocks.data() + size_t(r) * s.rowBytes + size_t(b) * s.codec->blockBytes,
                              s.out->codes.data() + size_t(r) * cols + size_t(b) * s.codec->blockValues);
    std::lock_guard lock(s.lossMutex);
    s.out->loss += st.loss;
}

} // namespace

std::optional<GptqConfig> gptqConfigForFormat(std::string_view formatName)
{
    const auto format = findFormat(formatName);
    if (format && format->traits().kind == FormatKind::Ggml && format->traits().storage &&
        gptq_ggml::codecFor(*format->traits().storage)) {
        GptqConfig c;
        c.bits = std::clamp(format->traits().bits, 2, 8);
        c.ggml = format->traits().storage;
        return c;
    }
    if (!format || format->traits().kind != FormatKind::Integer || format->traits().groupSize == 0)
        return std::nullopt;
    GptqConfig c;
    c.bits = format->traits().bits;
    c.groupSize = format->traits().groupSize;
    c.symmetric = format->traits().symmetric;
    return c;
}

const char* gptqKernelName()
{
    return kernels().name;
}

double gptqProxyError(const float* a, const float* b, int rows, int cols, const float* h, unsigned threads)
{
    if (rows <= 0 || cols <= 0)
        return 0.0;
    constexpr int kChunk = 256;
    const int chunks = (rows + kChunk - 1) / kChunk;
    std::vector<double> sums(size_t(chunks), 0.0);
    std::atomic<int> next{0};
    ThreadPool::instance().runWorkers(std::min<unsigned>(resolveThreads(threads), unsigned(chunks)), [&](unsigned) {
        std::vector<float> d;
        for (int k; (k = next.fetch_add(1)) < chunks;) {
            const int r0 = k * kChunk, n = std::min(kChunk, rows - r0);
            const size_t base = size_t(r0) * cols;
            d.resize(size_t(n) * cols);
            for (size_t i = 0; i < d.size(); ++i)
                d[i] = a[base + i] - b[base + i];
            sums[size_t(k)] = kernels().quadraticSum(d.data(), cols, n, cols, h);
        }
    });
    return std::accumulate(sums.begin(), sums.end(), 0.0);
}

GptqResult gptqQuantize(const float* w, int rows, int cols, const float* h, const GptqConfig& c, JobControl* job)
{
    validate(rows, cols, c);
    const size_t nw = size_t(rows) * cols, nh = size_t(cols) * cols;
    const unsigned threads = resolveThreads(c.threads);
    const gptq_ggml::Codec* codec = c.ggml ? gptq_ggml::codecFor(*c.ggml) : nullptr;
    GptqResult out;
    out.rows = rows;
    out.cols = cols;
    out.groups = codec ? cols / codec->blockValues : c.groupSize > 0 ? (cols + c.groupSize - 1) / c.groupSize : 1;
    out.dequantized.assign(nw, 0.0f);
    out.codes.assign(nw, 0);
    if (c.keepRounded)
        out.rounded.assign(nw, 0.0f);
    if (codec)
        out.ggmlBlocks.assign(size_t(rows) * size_t(out.groups) * size_t(codec->blockBytes), 0);
    else {
        out.scales.assign(size_t(out.groups) * rows, 0.0f);
        out.zeros.assign(size_t(out.groups) * rows, 0.0f);
    }

    std::vector<float> work(w, w + nw);
    std::vector<IntGrid> fixedGrids;
    if (!codec && c.groupSize < 0) // per channel: from the original W, before dead columns are zeroed (as the original)
        for (int r = 0; r < rows; ++r)
            fixedGrids.push_back(gridOf(w + size_t(r) * cols, cols, c));

    // Dead inputs: never seen a non-zero activation, so their weights do not matter; H_ii = 1 keeps H
    // invertible.
    std::vector<float> hdiag(static_cast<size_t>(cols));
    for (int i = 0; i < cols; ++i) {
        hdiag[i] = h[size_t(i) * cols + i];
        if (!std::isfinite(hdiag[i]))
            throw Error(ErrorCode::BadValue, "GPTQ: the Hessian holds a non-finite value");
        if (hdiag[i] == 0.0f) {
            hdiag[i] = 1.0f;
            for (int r = 0; r < rows; ++r)
                work[size_t(r) * cols + i] = 0.0f;
        }
    }
    std::vector<float> staticSource;
    if (codec && c.staticGroups)
        staticSource = work;
    if (!codec && c.groupSize > 0 && c.staticGroups) {
        fixedGrids.resize(size_t(out.groups) * rows);
        for (int g = 0; g < out.groups; ++g) {
            const int c0 = g * c.groupSize, n = std::min(c.groupSize, cols - c0);
            for (int r = 0; r < rows; ++r)
                fixedGrids[size_t(g) * rows + r] = gridOf(&work[size_t(r) * cols + c0], n, c);
        }
    }
    for (size_t g = 0; g < fixedGrids.size(); ++g) {
        out.scales[g] = fixedGrids[g].scale;
        out.zeros[g] = fixedGrids[g].zero;
    }

    out.perm.resize(size_t(cols));
    std::iota(out.perm.begin(), out.perm.end(), 0);
    if (c.actOrder)
        std::stable_sort(out.perm.begin(), out.perm.end(),
                         [&](int32_t a, int32_t b) { return hdiag[a] > hdiag[b]; });
    std::vector<int32_t> position(static_cast<size_t>(cols));
    for (int k = 0; k < cols; ++k)
        position[out.perm[k]] = k;
    out.gIdx.resize(size_t(cols));
    for (int j = 0; j < cols; ++j)
        out.gIdx[j] = codec                                ? j / codec->blockValues
                      : c.groupSize < 0                      ? 0
                      : (c.actOrder && !c.staticGroups) ? position[j] / c.groupSize
                                                           : j / c.groupSize;

    // Permuted, fixed-up and dampened H, then U.
    std::vector<float> hp(nh);
    double diagSum = 0.0;
    for (int i = 0; i < cols; ++i) {
        const int pi = out.perm[i];
        for (int j = 0; j < cols; ++j)
            hp[size_t(i) * cols + j] = h[size_t(pi) * cols + out.perm[j]];
        hp[size_t(i) * cols + i] = hdiag[pi];
        diagSum += hdiag[pi];
    }
    const float damp = static_cast<float>(c.percDamp) * static_cast<float>(diagSum / cols);
    for (int i = 0; i < cols; ++i)
        hp[size_t(i) * cols + i] += damp;
    if (c.actOrder) {
        std::vector<float> permuted(nw);
        for (int r = 0; r < rows; ++r)
            for (int k = 0; k < cols; ++k)
                permuted[size_t(r) * cols + k] = work[size_t(r) * cols + out.perm[k]];
        work.swap(permuted);
    }
    checkCancel(job);
    reportProgress(job, 0.0, "Inverting the Hessian");
    std::vector<float> u(nh);
    if (!kernels().inverseUpperCholesky(hp.data(), cols, u.data(), threads))
        throw Error(ErrorCode::BadValue,
                    "GPTQ: the dampened Hessian is not positive definite (raise the dampening)");
    hp = {};

    Sweep s;
    s.config = &c;
    s.rows = rows;
    s.cols = cols;
    s.groups = out.groups;
    s.work = work.data();
    s.u = u.data();
    s.perm = &out.perm;
    s.fixedGrids = &fixedGrids;
    s.codec = codec;
    s.staticSource = staticSource.data();
    s.rowBytes = codec ? size_t(out.groups) * size_t(codec->blockBytes) : 0;
    s.out = &out;
    s.job = job;
    const int bs = s.bs = sweepBlock(c, cols);
    s.blocksTotal = int64_t(rows) * ((cols + bs - 1) / bs);
    // Row chunks: enough for every worker to stay busy, big enough for efficient matrix products.
    const int chunkRows = std::max(16, std::min(512, (rows + int(threads) * 2 - 1) / (int(threads) * 2)));
    const int chunks = (rows + chunkRows - 1) / chunkRows;
    std::atomic<int> next{0};
    reportProgress(job, 0.0, "Quantizing columns");
    ThreadPool::instance().runWorkers(std::min<unsigned>(threads, unsigned(chunks)), [&](unsigned) {
        for (int k; (k = next.fetch_add(1)) < chunks;) {
            if (job && job->cancelled())
                return;
            sweepRows(s, k * chunkRows, std::min(rows, (k + 1) * chunkRows));
        }
    });
    checkCancel(job);

    if (c.measureError) {
        out.proxyError = gptqProxyError(w, out.dequantized.data(), rows, cols, h, threads);
        std::vector<float> rtn(nw);
        if (codec) { // llama-quantize's round to nearest with the same importance
            std::vector<uint8_t> blocks(out.ggmlBlocks.size());
            ggml::quantize(*c.ggml, w, uint64_t(rows), uint64_t(cols), blocks.data(),
                           c.importance.empty() ? nullptr : c.importance.data());
            ggml::decode(*c.ggml, blocks.data(), nw, rtn.data());
        } else {
            intRoundTrip(IntQuantConfig{c.bits, c.groupSize, c.symmetric}, w, uint64_t(rows), uint64_t(cols),
                         rtn.data());
        }
        out.proxyErrorRtn = gptqProxyError(w, rtn.data(), rows, cols, h, threads);
    } else {
        out.proxyError = out.proxyErrorRtn = std::numeric_limits<double>::quiet_NaN();
    }
    return out;
}

HessianAccumulator::HessianAccumulator(int cols) : m_cols(std::max(0, cols)), m_lower(size_t(m_cols) * m_cols, 0.0f)
{
}

void HessianAccumulator::add(const float* x, int64_t rows)
{
    if (rows <= 0 || m_cols == 0)
        return;
    const int64_t total = m_samples + rows;
    const float keep = static_cast<float>(double(m_samples) / double(total));
    m_samples = total;
    kernels().accumulate(m_lower.data(), m_cols, x, rows, keep, static_cast<float>(2.0 / double(total)));
}

std::vector<float> HessianAccumulator::hessian() const
{
    std::vector<float> h(size_t(m_cols) * m_cols);
    for (int j = 0; j < m_cols; ++j)
        for (int i = j; i < m_cols; ++i) {
            const float v = m_lower[size_t(j) * m_cols + i]; // (i, j), column-major, i >= j
            h[size_t(i) * m_cols + j] = v;
            h[size_t(j) * m_cols + i] = v;
        }
    return h;
}

} // namespace qs
