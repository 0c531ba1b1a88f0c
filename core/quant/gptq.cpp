#include "core/quant/gptq.h"

#include "core/quant/format.h"
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
}

// Everything one run shares between its row chunks.
struct Sweep {
    const GptqConfig* config = nullptr;
    int rows = 0, cols = 0, groups = 1;
    float* work = nullptr;                // rows x cols, permuted columns; updated lazily
    const float* u = nullptr;             // cols x cols upper Cholesky factor of the dampened H^-1
    const std::vector<int32_t>* perm = nullptr;
    const std::vector<IntGrid>* fixedGrids = nullptr; // groups x rows: per channel or static groups
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
    int r0 = 0, rows = 0, i1 = 0, bs = 0;
    float* wc = nullptr;  // the chunk's rows of W (stride cols), as the earlier blocks left them
    float* w1 = nullptr;  // the block's columns (stride bs), updated within the block
    float* err = nullptr; // scaled errors (stride bs)
    std::vector<IntGrid> grid;
    double loss = 0;
};

void quantizeColumn(void* ctx, int i)
{
    ChunkState& st = *static_cast<ChunkState*>(ctx);
    Sweep& s = *st.s;
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
        const float q = st.grid[r].scale * (code - st.grid[r].zero);
        const size_t at = size_t(st.r0 + r) * s.cols + orig;
        s.out->dequantized[at] = q;
        s.out->codes[at] = static_cast<uint8_t>(code);
        if (!s.out->rounded.empty())
            s.out->rounded[at] = x;
        st.err[size_t(r) * st.bs + i] = (x - q) / d;
        st.loss += 0.5 * double(x - q) * double(x - q) / (double(d) * d);
    }
}

void sweepRows(Sweep& s, int r0, int r1)
{
    const GptqConfig& c = *s.config;
    const int cols = s.cols, bs = std::min(c.blockSize, cols);
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
    if (c.groupSize < 0)
        for (int r = 0; r < st.rows; ++r)
            st.grid[r] = (*s.fixedGrids)[r0 + r];
    for (int i1 = 0; i1 < cols; i1 += bs) {
        checkCancel(s.job);
        const int i2 = std::min(i1 + bs, cols), count = i2 - i1;
        st.i1 = i1;
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
    std::lock_guard lock(s.lossMutex);
    s.out->loss += st.loss;
}

} // namespace

std::optional<GptqConfig> gptqConfigForFormat(std::string_view formatName)
{
    const auto format = findFormat(formatName);
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
    GptqResult out;
    out.rows = rows;
    out.cols = cols;
    out.groups = c.groupSize > 0 ? (cols + c.groupSize - 1) / c.groupSize : 1;
    out.dequantized.assign(nw, 0.0f);
    out.codes.assign(nw, 0);
    if (c.keepRounded)
        out.rounded.assign(nw, 0.0f);
    out.scales.assign(size_t(out.groups) * rows, 0.0f);
    out.zeros.assign(size_t(out.groups) * rows, 0.0f);

    std::vector<float> work(w, w + nw);
    std::vector<IntGrid> fixedGrids;
    if (c.groupSize < 0) // per channel: from the original W, before dead columns are zeroed (as the original)
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
    if (c.groupSize > 0 && c.staticGroups) {
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
        out.gIdx[j] = c.groupSize < 0                      ? 0
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
    s.out = &out;
    s.job = job;
    const int bs = std::min(c.blockSize, cols);
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
        intRoundTrip(IntQuantConfig{c.bits, c.groupSize, c.symmetric}, w, uint64_t(rows), uint64_t(cols),
                     rtn.data());
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
