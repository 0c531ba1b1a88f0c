#include "core/stats/stats.h"

#include "core/model/matrixview.h"
#include "core/model/model.h"
#include "core/stats/kernels.h"
#include "core/stats/moments.h"
#include "core/stats/statscache.h"
#include "core/util/error.h"
#include "core/util/job.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>

namespace qs {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kBlockElements = 16384; // one decoded block: 64 KiB of floats, stays in L2
// One-chunk tensors up to this size collect their counts by re-reading their keys instead of scanning the
// 65536-entry tables (which would dominate the time of small tensors such as norms and biases).
constexpr size_t kSparseFlushElements = 32768;

enum class Path : uint8_t { Float, Table16, Table8 };

Path pathFor(DType type)
{
    switch (type) {
    case DType::BF16:
    case DType::F16:
    case DType::I16:
    case DType::U16:
    case DType::I16_GGML:
        return Path::Table16;
    case DType::F8_E4M3:
    case DType::F8_E5M2:
    case DType::I8:
    case DType::U8:
    case DType::Bool:
    case DType::I8_GGML:
        return Path::Table8;
    default:
        return Path::Float;
    }
}

// Types whose every value equals its bfloat16 truncation, so the histogram keys are the values.
bool keysExact(DType type)
{
    switch (type) {
    case DType::BF16:
    case DType::F8_E4M3:
    case DType::F8_E5M2:
    case DType::I8:
    case DType::U8:
    case DType::Bool:
    case DType::I8_GGML:
        return true;
    default:
        return false;
    }
}

uint64_t channelLengthOf(const TensorInfo& t)
{
    const uint64_t n = t.elements();
    if (n == 0)
        return 0;
    if (t.shape.size() >= 4)
        return n / t.shape[0];
    return t.columns();
}

// Largest float <= v and smallest float >= v: x > hi  <=>  x > floatBelow(hi) for every float x.
float floatBelow(double v)
{
    float f = static_cast<float>(v);
    if (static_cast<double>(f) > v)
        f = std::nextafter(f, -std::numeric_limits<float>::infinity());
    return f;
}

float floatAbove(double v)
{
    float f = static_cast<float>(v);
    if (static_cast<double>(f) < v)
        f = std::nextafter(f, std::numeric_limits<float>::infinity());
    return f;
}

struct RowAcc {
    Moments m;
    float absmax = 0;
    void merge(const RowAcc& o)
    {
        m.merge(o.m);
        absmax = std::max(absmax, o.absmax);
    }
};

// One output channel of a channels-last tensor ([..., in, out]: Keras kernels, Paddle Linear): its values are
// strided, one per row of length `out`. Plain sums (weights are near zero-mean, double keeps them exact enough
// for a standard deviation shown on a plot), additive across chunks.
struct ColAcc {
    double n = 0, s1 = 0, s2 = 0;
    float absmax = 0;
    void merge(const ColAcc& o)
    {
        n += o.n;
        s1 += o.s1;
        s2 += o.s2;
        absmax = std::max(absmax, o.absmax);
    }
};

struct ChunkResult {
    Moments moments; // Float path only
    float min = std::numeric_limits<float>::infinity(), max = -std::numeric_limits<float>::infinity();
    uint64_t zeros = 0, nan = 0, inf = 0;
    uint64_t firstRow = 0;
    std::vector<RowAcc> rows;
    std::vector<ColAcc> cols; // channels-last tensors only
};

struct TensorJob {
    size_t index = 0; // in model.tensors()
    size_t slot = 0;  // in the result vector
    const TensorInfo* info = nullptr;
    Path path = Path::Float;
    uint64_t elements = 0, channelLength = 0, chunkElements = 0;
    // Channels-last layout: the output channel is the last axis; rows of `segment` = shape.back() values
    // hold one value of every channel. Otherwise segment = channelLength and each row is a channel.
    bool channelsLast = false;
    uint64_t segment = 0;
    size_t chunks = 0;

    std::mutex mutex;                                  // guards table and chunkResults
    std::vector<uint64_t> table;                       // dense key / bit-pattern counts
    std::vector<std::pair<uint16_t, uint64_t>> sparse; // instead of `table` for small one-chunk tensors
    size_t magnitudeKeys = 0;                          // span of `table` that holds counts (see KeySpan)
    std::vector<ChunkResult> chunkResults;
    std::atomic<size_t> remaining{0};

    // Second pass (Float path): values outside the 3σ / 6σ bounds.
    float lo3 = 0, hi3 = 0, lo6 = 0, hi6 = 0;
    std::atomic<uint64_t> outside3{0}, outside6{0};
    std::atomic<size_t> remaining2{0};

    std::atomic<bool> failed{false};
    std::string error; // set once, under mutex
    TensorStats result;
};

struct Task {
    TensorJob* job;
    int phase; // 1: statistics, 2: σ counts
    size_t chunk;
};

// Per-thread scratch: the decoded block and the interleaved key tables.
struct Scratch {
    std::vector<float> floats = std::vector<float>(kBlockElements);
    std::vector<uint16_t> halves = std::vector<uint16_t>(kBlockElements);
    std::vector<uint32_t> tables = std::vector<uint32_t>(detail::kKeyTables * detail::kKeys);
};

// Adds a worker's key counts to the tensor's table and leaves the worker's tables zeroed, in one pass that
// writes only the keys that occurred.
void flushRange(Scratch& s, uint64_t* table, size_t from, size_t to)
{
    uint32_t* t0 = s.tables.data();
    uint32_t* t1 = t0 + detail::kKeys;
    uint32_t* t2 = t1 + detail::kKeys;
    uint32_t* t3 = t2 + detail::kKeys;
    static_assert(detail::kKeyTables == 4);
    constexpr size_t kGroup = 16; // skip empty runs of keys with one vectorised test
    for (size_t g = from; g < to; g += kGroup) {
        const size_t n = std::min(kGroup, to - g);
        uint32_t any = 0;
        if (n == kGroup)
            for (size_t q = 0; q < kGroup; ++q)
                any |= t0[g + q] | t1[g + q] | t2[g + q] | t3[g + q];
        else
            any = 1;
        if (!any)
            continue;
        for (size_t k = g; k < g + n; ++k) {
            const uint64_t sum = uint64_t(t0[k]) + t1[k] + t2[k] + t3[k];
            if (sum) {
                table[k] += sum;
                t0[k] = t1[k] = t2[k] = t3[k] = 0;
            }
        }
    }
}

// Key ranges that can hold counts: with every value finite and |x| <= absmax, only magnitude keys up to
// keyOf(absmax) in each sign half (for weights about half the table, less for small absmax).
struct KeySpan {
    size_t magnitudeKeys = detail::kKeys / 2; // keys [0, m) and [0x8000, 0x8000 + m)
    size_t patterns = detail::kKeys;          // 256 for 8-bit tables (then magnitudeKeys is unused)
};

void flushTables(Scratch& s, TensorJob& job, KeySpan span)
{
    std::lock_guard lock(job.mutex);
    uint64_t* table = job.table.data();
    if (span.patterns < detail::kKeys) {
        flushRange(s, table, 0, span.patterns);
        return;
    }
    flushRange(s, table, 0, span.magnitudeKeys);
    flushRange(s, table, detail::kKeys / 2, detail::kKeys / 2 + span.magnitudeKeys);
    job.magnitudeKeys = std::max(job.magnitudeKeys, span.magnitudeKeys);
}

// For a small chunk: moves the worker's counts of the keys that occur in it (found again by re-reading the
// chunk's keys, cheaper than scanning all 65536) into `out`, leaving the worker's tables zeroed.
template <typename KeyAt>
void flushSparse(Scratch& s, size_t n, KeyAt keyAt, std::vector<std::pair<uint16_t, uint64_t>>& out)
{
    uint32_t* t0 = s.tables.data();
    uint32_t* t1 = t0 + detail::kKeys;
    uint32_t* t2 = t1 + detail::kKeys;
    uint32_t* t3 = t2 + detail::kKeys;
    for (size_t i = 0; i < n; ++i) {
        const uint16_t k = keyAt(i);
        const uint64_t sum = uint64_t(t0[k]) + t1[k] + t2[k] + t3[k];
        if (sum) {
            out.emplace_back(k, sum);
            t0[k] = t1[k] = t2[k] = t3[k] = 0;
        }
    }
}

// The non-zero entries of a dense count table, in key order; zeroes them so the table can be reused.
void takeRange(std::vector<uint64_t>& table, size_t from, size_t to,
               std::vector<std::pair<uint16_t, uint64_t>>& entries)
{
    constexpr size_t kGroup = 8;
    for (size_t g = from; g < to; g += kGroup) {
        const size_t n = std::min(kGroup, to - g);
        uint64_t any = n == kGroup ? 0 : 1;
        if (n == kGroup)
            for (size_t q = 0; q < kGroup; ++q)
                any |= table[g + q];
        if (!any)
            continue;
        for (size_t k = g; k < g + n; ++k) {
            if (table[k]) {
                entries.emplace_back(static_cast<uint16_t>(k), table[k]);
                table[k] = 0;
            }
        }
    }
}

std::vector<std::pair<uint16_t, uint64_t>> takeEntries(std::vector<uint64_t>& table, size_t patterns,
                                                       size_t magnitudeKeys)
{
    std::vector<std::pair<uint16_t, uint64_t>> entries;
    if (patterns < detail::kKeys) {
        takeRange(table, 0, patterns, entries);
    } else {
        takeRange(table, 0, magnitudeKeys, entries);
        takeRange(table, detail::kKeys / 2, detail::kKeys / 2 + magnitudeKeys, entries);
    }
    return entries;
}

// A histogram from (key, count) pairs in any order, possibly repeating keys; non-finite keys are dropped.
Histogram histogramFrom(std::vector<std::pair<uint16_t, uint64_t>> entries, bool exact)
{
    // Two-pass LSD radix sort on the 16-bit key: linear, where a comparison sort of a few thousand
    // entries would cost more than counting a small tensor.
    std::vector<std::pair<uint16_t, uint64_t>> tmp(entries.size());
    for (int shift : {0, 8}) {
        size_t start[257] = {};
        for (const auto& e : entries)
            ++start[((e.first >> shift) & 0xFF) + 1];
        for (int b = 0; b < 256; ++b)
            start[b + 1] += start[b];
        for (const auto& e : entries)
            tmp[start[(e.first >> shift) & 0xFF]++] = e;
        entries.swap(tmp);
    }
    std::vector<uint16_t> keys;
    std::vector<uint64_t> counts;
    for (const auto& [k, c] : entries) {
        if (!Histogram::finiteKey(k) || c == 0)
            continue;
        if (!keys.empty() && keys.back() == k)
            counts.back() += c;
        else {
            keys.push_back(k);
            counts.push_back(c);
        }
    }
    Histogram h;
    Histogram::fromSparse(std::move(keys), std::move(counts), exact, &h); // valid by construction
    return h;
}

class Engine {
public:
    Engine(const Model& model, JobControl* job, unsigned threads)
        : m_model(model), m_control(job), m_threads(resolveThreads(threads))
    {
    }

    // Runs every job; on return each job's result is filled (or its error set).
    // Throws CancelledError when cancelled.
    void run(std::vector<std::unique_ptr<TensorJob>>& jobs, size_t chunkBytes,
             const TensorStatsCallback& done)
    {
        m_done = done;
        m_totalBytes = 0;
        for (auto& j : jobs) {
            prepare(*j, chunkBytes);
            if (j->chunks == 0) {
                if (j->result.error.empty())
                    finishMoments(j->result); // empty tensor
                finish(*j);
                continue;
            }
            for (size_t c = 0; c < j->chunks; ++c)
                m_queue.push_back({j.get(), 1, c});
        }
        if (m_queue.empty())
            return;
        // A worker waits while others still run chunks (they queue the second pass of float tensors), so
        // a late helper finds either work or nothing in flight: the pool's "pull until empty" contract.
        const auto workers = static_cast<unsigned>(std::min<size_t>(m_threads, m_queue.size()));
        ThreadPool::instance().runWorkers(workers, [this](unsigned) { worker(); });
        if (m_cancelled)
            throw CancelledError();
    }

private:
    void prepare(TensorJob& j, size_t chunkBytes)
    {
        const TensorInfo& t = *j.info;
        j.path = pathFor(t.dtype);
        j.elements = t.elements();
        // A transposed matrix view (Keras / Paddle / GPT-2 [..., in, out], Keras depthwise [kh, kw, in, m]):
        // the channel of a stored value is its index modulo the view's rows.
        const MatrixView view = matrixViewOf(m_model, t);
        j.channelsLast = view.transposed;
        j.channelLength = j.channelsLast ? view.cols : channelLengthOf(t);
        j.segment = j.channelsLast ? view.rows : j.channelLength;
        j.result.name = t.name;
        j.result.dtype = t.dtype;
        j.result.shape = t.shape;
        j.result.count = j.elements;
        j.result.channelLength = j.channelLength;
        const auto& info = dtypeInfo(t.dtype);
        if (!info.decodable) {
            j.result.error = std::string("cannot decode ") + info.name;
            j.chunks = 0;
            return;
        }
        const double bytesPerElement = double(info.blockBytes) / double(info.blockElements);
        uint64_t chunk = static_cast<uint64_t>(double(std::max<size_t>(chunkBytes, 1)) / bytesPerElement);
        // Whole multiples of 64 Ki elements (block-aligned for every type), and below 2^31 elements so
        // that the per-thread 32-bit key counters cannot overflow within a chunk.
        chunk = std::clamp<uint64_t>(chunk / 65536 * 65536, 65536, uint64_t(1) << 30);
        j.chunkElements = chunk;
        j.chunks = static_cast<size_t>((j.elements + chunk - 1) / chunk);
        j.chunkResults.resize(j.chunks);
        j.remaining = j.chunks;
        m_totalBytes += t.bytes * (j.path == Path::Float ? 2 : 1); // the second pass reads it again
    }

    void worker()
    {
        Scratch scratch;
        for (;;) {
            Task task;
            {
                std::unique_lock lock(m_mutex);
                m_wake.wait(lock, [&] { return m_stop || !m_queue.empty() || m_inflight == 0; });
                if (m_stop || m_queue.empty())
                    break;
                task = m_queue.front();
                m_queue.pop_front();
                ++m_inflight;
            }
            bool cancelled = false;
            try {
                if (task.phase == 1)
                    runChunk(*task.job, task.chunk, scratch);
                else
                    runCountChunk(*task.job, task.chunk, scratch);
            } catch (const CancelledError&) {
                cancelled = true;
            } catch (const std::exception& e) {
                fail(*task.job, e.what());
                // Counts of the failed chunk must not leak into the next tensor's.
                std::fill(scratch.tables.begin(), scratch.tables.end(), 0u);
            }
            if (!cancelled) {
                try {
                    if (task.phase == 1)
                        endChunk(*task.job);
                    else
                        endCountChunk(*task.job);
                } catch (const std::exception& e) {
                    fail(*task.job, e.what());
                }
            }
            if (cancelled) {
                std::lock_guard lock(m_mutex);
                m_cancelled = true;
                m_stop = true;
            }
            {
                std::lock_guard lock(m_mutex);
                --m_inflight;
            }
            m_wake.notify_all();
        }
        m_wake.notify_all();
    }

    void fail(TensorJob& j, const std::string& message)
    {
        std::lock_guard lock(j.mutex);
        if (!j.failed.exchange(true))
            j.error = message;
    }

    void checkCancel()
    {
        if (m_control && m_control->cancelled())
            throw CancelledError();
    }

    void addProgress(uint64_t bytes, const TensorJob& j)
    {
        const uint64_t done = m_bytesDone.fetch_add(bytes) + bytes;
        if (m_control && m_totalBytes)
            m_control->reportBytes(std::min(done, m_totalBytes), m_totalBytes, j.info->name);
    }

    // Points at the floats of elements [e, e + n) of the tensor, decoding into scratch when needed.
    // For table paths also returns the raw bit patterns through `bits`.
    const float* blockFloats(TensorJob& j, std::span<const std::byte> raw, uint64_t e, size_t n, Scratch& s,
                             const void** bits)
    {
        const DType type = j.info->dtype;
        if (j.path == Path::Table16) {
            const std::byte* p = raw.data() + 2 * e;
            const uint16_t* h;
            if (reinterpret_cast<uintptr_t>(p) % alignof(uint16_t) == 0) {
                h = reinterpret_cast<const uint16_t*>(p);
            } else {
                std::memcpy(s.halves.data(), p, 2 * n);
                h = s.halves.data();
            }
            *bits = h;
            if (type == DType::BF16)
                return nullptr; // the kernels read BF16 bit patterns directly
            if (type == DType::F16)
                detail::f16ToFloats(h, n, s.floats.data());
            else
                decodeToFloat(type, h, n, s.floats.data());
            return s.floats.data();
        }
        if (j.path == Path::Table8) {
            *bits = raw.data() + e;
            decodeToFloat(type, raw.data() + e, n, s.floats.data());
            return s.floats.data();
        }
        if (type == DType::F32) {
            const std::byte* p = raw.data() + 4 * e;
            if (reinterpret_cast<uintptr_t>(p) % alignof(float) == 0)
                return reinterpret_cast<const float*>(p);
        }
        m_model.decode(*j.info, e, n, s.floats.data());
        return s.floats.data();
    }

    void runChunk(TensorJob& j, size_t chunk, Scratch& s)
    {
        if (j.failed)
            return;
        const auto raw = m_model.rawData(*j.info);
        const uint64_t begin = chunk * j.chunkElements;
        const uint64_t end = std::min(j.elements, begin + j.chunkElements);
        const uint64_t L = j.segment;
        const int order = j.path == Path::Float ? 4 : 2;
        const auto& info = dtypeInfo(j.info->dtype);
        // Start the kernel's read-ahead for the whole chunk: on a cold cache the disk then streams while
        // the first blocks are being counted.
        const auto& file = *m_model.files()[j.info->fileIndex];
        const uint64_t chunkOffset = j.info->offset + begin / info.blockElements * info.blockBytes;
        const uint64_t chunkLength = (end - begin) / info.blockElements * info.blockBytes;
        file.adviseSequential(chunkOffset, chunkLength);
        file.adviseWillNeed(chunkOffset, chunkLength);

        ChunkResult r;
        const bool haveFloats = !(j.path == Path::Table16 && j.info->dtype == DType::BF16);
        float chunkAbsmax = 0;
        uint64_t chunkFinite = 0;
        r.firstRow = begin / L;
        r.rows.resize(static_cast<size_t>((end - 1) / L - r.firstRow + 1));
        if (j.channelsLast)
            r.cols.resize(static_cast<size_t>(L));
        for (uint64_t e = begin; e < end;) {
            checkCancel();
            const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlockElements, end - e));
            const void* bits = nullptr;
            const float* x = blockFloats(j, raw, e, n, s, &bits);
            // F32-path and BF16 keys are counted inside the moments kernels (one pass over the block).
            if (j.path == Path::Table16 && x)
                detail::countKeys16(static_cast<const uint16_t*>(bits), n, s.tables.data());
            else if (j.path == Path::Table8)
                detail::countKeys8(static_cast<const uint8_t*>(bits), n, s.tables.data());
            uint32_t* fusedKeys = j.path == Path::Float || !x ? s.tables.data() : nullptr;

            // Per-channel segments of the block.
            for (size_t off = 0; off < n;) {
                const uint64_t pos = e + off;
                const uint64_t row = pos / L;
                const size_t len = static_cast<size_t>(std::min<uint64_t>(n - off, (row + 1) * L - pos));
                // Shift by the segment's first finite value: within a few σ of its mean, so the shifted sums
                // keep their precision whatever the segment's offset or scale.
                float shift = 0;
                detail::BlockSums b;
                if (x) {
                    const float* seg = x + off;
                    for (size_t i = 0; i < len; ++i)
                        if (std::isfinite(seg[i])) {
                            shift = seg[i];
                            break;
                        }
                    detail::accumulateBlock(seg, len, shift, order, b, fusedKeys);
                } else {
                    const uint16_t* seg = static_cast<const uint16_t*>(bits) + off;
                    for (size_t i = 0; i < len; ++i)
                        if (std::isfinite(bf16ToFloat(seg[i]))) {
                            shift = bf16ToFloat(seg[i]);
                            break;
                        }
                    detail::accumulateBf16(seg, len, shift, b, fusedKeys);
                }
                if (j.channelsLast) {
                    // The segment is (part of) one row: value i belongs to channel (pos + i) mod L.
                    const size_t c0 = static_cast<size_t>(pos % L);
                    for (size_t i = 0; i < len; ++i) {
                        const float v = x ? x[off + i] : bf16ToFloat(static_cast<const uint16_t*>(bits)[off + i]);
                        if (!std::isfinite(v))
                            continue;
                        ColAcc& c = r.cols[c0 + i];
                        c.n += 1;
                        c.s1 += v;
                        c.s2 += double(v) * v;
                        c.absmax = std::max(c.absmax, std::fabs(v));
                    }
                }
                const Moments m = Moments::fromShiftedSums(double(b.finite), shift, b.s1, b.s2, b.s3, b.s4);
                RowAcc& acc = r.rows[static_cast<size_t>(row - r.firstRow)];
                chunkFinite += b.finite;
                chunkAbsmax = std::max(chunkAbsmax, b.absmax);
                if (b.finite) {
                    acc.m.merge(m);
                    acc.absmax = std::max(acc.absmax, b.absmax);
                    r.min = std::min(r.min, b.min);
                    r.max = std::max(r.max, b.max);
                }
                if (j.path == Path::Float)
                    r.moments.merge(m);
                r.zeros += b.zeros;
                r.nan += b.nan;
                r.inf += b.inf;
                off += len;
            }
            e += n;
        }
        const auto* rawBytes = reinterpret_cast<const unsigned char*>(raw.data());
        const size_t n = static_cast<size_t>(end - begin);
        const bool rawKeys = j.path != Path::Float || j.info->dtype == DType::F32;
        if (j.chunks == 1 && n <= kSparseFlushElements && (rawKeys || n <= kBlockElements)) {
            std::vector<std::pair<uint16_t, uint64_t>> entries;
            if (j.path == Path::Table8) {
                flushSparse(
                    s, n, [&](size_t i) { return uint16_t(rawBytes[begin + i]); }, entries);
            } else if (j.path == Path::Table16) {
                flushSparse(
                    s, n,
                    [&](size_t i) {
                        uint16_t h;
                        std::memcpy(&h, rawBytes + 2 * (begin + i), 2);
                        return h;
                    },
                    entries);
            } else {
                // F32 from the file, other types from the block buffer (the chunk was one block).
                const unsigned char* src =
                    rawKeys ? rawBytes + 4 * begin : reinterpret_cast<const unsigned char*>(s.floats.data());
                flushSparse(
                    s, n,
                    [&](size_t i) {
                        uint32_t b;
                        std::memcpy(&b, src + 4 * i, 4);
                        return uint16_t(b >> 16);
                    },
                    entries);
            }
            std::lock_guard lock(j.mutex);
            j.sparse = std::move(entries);
            j.chunkResults[chunk] = std::move(r);
            addProgress((end - begin) / info.blockElements * info.blockBytes, j);
            return;
        }
        {
            std::unique_lock lock(j.mutex);
            if (j.table.empty()) {
                lock.unlock();
                auto fresh = acquireTable();
                lock.lock();
                if (j.table.empty())
                    j.table = std::move(fresh);
                else
                    releaseTable(std::move(fresh), true);
            }
        }
        KeySpan span;
        if (j.path == Path::Table8) {
            span.patterns = 256;
        } else if ((j.path == Path::Float || !haveFloats) && chunkFinite == end - begin) {
            // Float keys and BF16 patterns are both the top 16 bits of the value: bounded by the absmax's.
            span.magnitudeKeys = (Histogram::keyOf(chunkAbsmax) & 0x7FFFu) + 1u;
        }
        flushTables(s, j, span);
        {
            std::lock_guard lock(j.mutex);
            j.chunkResults[chunk] = std::move(r);
        }
        addProgress((end - begin) / info.blockElements * info.blockBytes, j);
    }

    void endChunk(TensorJob& j)
    {
        if (--j.remaining != 0)
            return;
        if (j.failed) {
            finish(j);
            return;
        }
        try {
            combine(j);
        } catch (const std::exception& e) {
            fail(j, e.what());
            finish(j);
            return;
        }
        if (j.path != Path::Float || j.result.finite == 0 || !(j.result.std > 0) || countOutsideFromKeys(j)) {
            if (j.path == Path::Float)
                addProgress(j.info->bytes, j); // the second pass is not needed
            finish(j);
            return;
        }
        // The σ bounds cut through histogram keys: count exactly in a second pass, at the queue's head so
        // that it runs while the tensor's pages are still cached.
        j.remaining2 = j.chunks;
        std::lock_guard lock(m_mutex);
        for (size_t c = j.chunks; c-- > 0;)
            m_queue.push_front({&j, 2, c});
        m_wake.notify_all();
    }

    // Exact σ-counts from the histogram when no key straddles a bound; false when the data is needed.
    bool countOutsideFromKeys(TensorJob& j)
    {
        uint64_t out3 = 0, out6 = 0;
        const Histogram& h = j.result.histogram;
        for (size_t i = 0; i < h.keys().size(); ++i) {
            const uint64_t c = h.counts()[i];
            const uint16_t key = h.keys()[i];
            const float a = Histogram::keyLow(key), b = Histogram::keyHigh(key);
            auto classify = [&](float lo, float hi, uint64_t& out) {
                if (b < lo || a > hi)
                    out += c;
                else if (a < lo || b > hi)
                    return false; // part of the key may lie outside
                return true;
            };
            if (!classify(j.lo3, j.hi3, out3) || !classify(j.lo6, j.hi6, out6))
                return false;
        }
        j.result.beyond3Sigma = out3;
        j.result.beyond6Sigma = out6;
        return true;
    }

    void runCountChunk(TensorJob& j, size_t chunk, Scratch& s)
    {
        if (!j.failed) {
            const auto raw = m_model.rawData(*j.info);
            const uint64_t begin = chunk * j.chunkElements;
            const uint64_t end = std::min(j.elements, begin + j.chunkElements);
            uint64_t out3 = 0, out6 = 0;
            for (uint64_t e = begin; e < end;) {
                checkCancel();
                const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlockElements, end - e));
                const void* bits = nullptr;
                const float* x = blockFloats(j, raw, e, n, s, &bits);
                out3 += detail::countOutside(x, n, j.lo3, j.hi3);
                out6 += detail::countOutside(x, n, j.lo6, j.hi6);
                e += n;
            }
            j.outside3 += out3;
            j.outside6 += out6;
            const auto& info = dtypeInfo(j.info->dtype);
            addProgress((end - begin) / info.blockElements * info.blockBytes, j);
        }
    }

    void endCountChunk(TensorJob& j)
    {
        if (--j.remaining2 != 0)
            return;
        j.result.beyond3Sigma = j.outside3;
        j.result.beyond6Sigma = j.outside6;
        finish(j);
    }

    // Merges the chunk results (in chunk order, so results do not depend on scheduling).
    void combine(TensorJob& j)
    {
        TensorStats& st = j.result;
        std::lock_guard lock(j.mutex);
        const uint64_t channels = j.channelLength ? j.elements / j.channelLength : 0;
        std::vector<RowAcc> rows(static_cast<size_t>(j.segment ? j.elements / j.segment : 0));
        std::vector<ColAcc> cols(j.channelsLast ? static_cast<size_t>(channels) : 0);
        Moments total;
        float mn = std::numeric_limits<float>::infinity(), mx = -mn;
        uint64_t zeros = 0, nan = 0, inf = 0;
        for (auto& r : j.chunkResults) {
            for (size_t i = 0; i < r.rows.size(); ++i)
                rows[static_cast<size_t>(r.firstRow) + i].merge(r.rows[i]);
            for (size_t i = 0; i < r.cols.size() && i < cols.size(); ++i)
                cols[i].merge(r.cols[i]);
            total.merge(r.moments);
            mn = std::min(mn, r.min);
            mx = std::max(mx, r.max);
            zeros += r.zeros;
            nan += r.nan;
            inf += r.inf;
        }
        j.chunkResults.clear();
        j.chunkResults.shrink_to_fit();
        if (j.channelsLast) {
            st.channelAbsmax.resize(cols.size());
            st.channelStd.resize(cols.size());
            for (size_t i = 0; i < cols.size(); ++i) {
                const double mean = cols[i].n > 0 ? cols[i].s1 / cols[i].n : 0.0;
                st.channelAbsmax[i] = cols[i].absmax;
                st.channelStd[i] =
                    cols[i].n > 0 ? static_cast<float>(std::sqrt(std::max(0.0, cols[i].s2 / cols[i].n - mean * mean)))
                                  : 0.0f;
            }
        } else {
            st.channelAbsmax.resize(rows.size());
            st.channelStd.resize(rows.size());
            for (size_t i = 0; i < rows.size(); ++i) {
                st.channelAbsmax[i] = rows[i].absmax;
                st.channelStd[i] =
                    rows[i].m.n > 0 ? static_cast<float>(std::sqrt(rows[i].m.m2 / rows[i].m.n)) : 0.0f;
            }
        }
        const size_t patterns = j.path == Path::Table8 ? 256 : detail::kKeys;
        std::vector<std::pair<uint16_t, uint64_t>> entries = std::move(j.sparse);
        if (!j.table.empty()) {
            entries = takeEntries(j.table, patterns, j.magnitudeKeys);
            releaseTable(std::move(j.table), true);
            j.table = {};
        }

        if (j.path == Path::Float) {
            st.finite = static_cast<uint64_t>(total.n);
            st.zeros = zeros;
            st.nan = nan;
            st.inf = inf;
            st.min = st.finite ? double(mn) : kNaN;
            st.max = st.finite ? double(mx) : kNaN;
            st.mean = st.finite ? total.mean : kNaN;
            st.m2 = total.m2;
            st.m3 = total.m3;
            st.m4 = total.m4;
            st.histogram = histogramFrom(std::move(entries), keysExact(j.info->dtype));
        } else {
            combineTable(j, entries);
        }
        finishMoments(st);
        if (j.path == Path::Float && st.finite && st.std > 0) {
            j.lo3 = floatAbove(st.mean - 3 * st.std);
            j.hi3 = floatBelow(st.mean + 3 * st.std);
            j.lo6 = floatAbove(st.mean - 6 * st.std);
            j.hi6 = floatBelow(st.mean + 6 * st.std);
        }
    }

    static void finishMoments(TensorStats& st)
    {
        if (st.finite == 0) {
            st.min = st.max = st.absmax = st.mean = st.std = st.kurtosis = kNaN;
            return;
        }
        const double n = double(st.finite);
        st.absmax = std::max(std::fabs(st.min), std::fabs(st.max));
        st.std = std::sqrt(st.m2 / n);
        st.kurtosis = st.m2 > 0 ? n * st.m4 / (st.m2 * st.m2) - 3.0 : kNaN;
    }

    // Exact statistics from per-bit-pattern counts.
    void combineTable(TensorJob& j, const std::vector<std::pair<uint16_t, uint64_t>>& patterns)
    {
        TensorStats& st = j.result;
        const DType type = j.info->dtype;
        std::vector<std::pair<double, uint64_t>> values; // finite values with counts
        std::vector<std::pair<uint16_t, uint64_t>> keys;
        for (const auto& [p, c] : patterns) {
            float v;
            if (j.path == Path::Table8) {
                const auto b = static_cast<uint8_t>(p);
                decodeToFloat(type, &b, 1, &v);
            } else {
                const auto h = static_cast<uint16_t>(p);
                decodeToFloat(type, &h, 1, &v);
            }
            if (std::isnan(v)) {
                st.nan += c;
            } else if (std::isinf(v)) {
                st.inf += c;
            } else {
                st.zeros += v == 0 ? c : 0;
                values.emplace_back(v, c);
                keys.emplace_back(Histogram::keyOf(v), c);
            }
        }
        uint64_t n = 0;
        double sum = 0, mn = std::numeric_limits<double>::infinity(), mx = -mn;
        for (auto [v, c] : values) {
            n += c;
            sum += v * double(c);
            mn = std::min(mn, v);
            mx = std::max(mx, v);
        }
        st.finite = n;
        if (n) {
            double mean = sum / double(n), corr = 0;
            for (auto [v, c] : values)
                corr += (v - mean) * double(c);
            mean += corr / double(n);
            double m2 = 0, m3 = 0, m4 = 0;
            for (auto [v, c] : values) {
                const double d = v - mean, d2 = d * d;
                m2 += d2 * double(c);
                m3 += d2 * d * double(c);
                m4 += d2 * d2 * double(c);
            }
            st.min = mn;
            st.max = mx;
            st.mean = mean;
            st.m2 = m2;
            st.m3 = m3;
            st.m4 = m4;
            const double sd = std::sqrt(m2 / double(n));
            const double lo3 = mean - 3 * sd, hi3 = mean + 3 * sd, lo6 = mean - 6 * sd, hi6 = mean + 6 * sd;
            for (auto [v, c] : values) {
                st.beyond3Sigma += (v < lo3 || v > hi3) ? c : 0;
                st.beyond6Sigma += (v < lo6 || v > hi6) ? c : 0;
            }
        }
        st.histogram = histogramFrom(std::move(keys), keysExact(type));
    }

    void finish(TensorJob& j)
    {
        if (j.failed) {
            TensorStats failed;
            failed.name = j.info->name;
            failed.dtype = j.info->dtype;
            failed.shape = j.info->shape;
            failed.count = j.elements;
            failed.channelLength = j.channelLength;
            failed.error = j.error;
            j.result = std::move(failed);
        }
        if (!j.table.empty()) // a failed tensor's table
            releaseTable(std::move(j.table), false);
        j.table = {};
        if (m_done) {
            std::lock_guard lock(m_callbackMutex);
            try {
                m_done(j.index, j.result);
            } catch (...) { // a failing consumer must not take the workers down
            }
        }
    }

    // Dense per-tensor tables are recycled (always returned zeroed): a fresh 512 KiB allocation per tensor
    // costs page faults that dominate small tensors.
    std::vector<uint64_t> acquireTable()
    {
        std::lock_guard lock(m_poolMutex);
        if (m_pool.empty())
            return std::vector<uint64_t>(detail::kKeys, 0);
        auto t = std::move(m_pool.back());
        m_pool.pop_back();
        return t;
    }

    void releaseTable(std::vector<uint64_t>&& table, bool zeroed)
    {
        if (table.size() != detail::kKeys)
            return;
        if (!zeroed)
            std::fill(table.begin(), table.end(), 0);
        std::lock_guard lock(m_poolMutex);
        m_pool.push_back(std::move(table));
    }

    const Model& m_model;
    JobControl* m_control;
    std::mutex m_poolMutex;
    std::vector<std::vector<uint64_t>> m_pool;
    unsigned m_threads = 1;
    TensorStatsCallback m_done;
    uint64_t m_totalBytes = 0;
    std::atomic<uint64_t> m_bytesDone{0};

    std::mutex m_mutex; // guards the queue and the flags below
    std::condition_variable m_wake;
    std::deque<Task> m_queue;
    size_t m_inflight = 0;
    bool m_stop = false;
    bool m_cancelled = false;
    std::mutex m_callbackMutex;
};

std::vector<std::unique_ptr<TensorJob>> makeJobs(const Model& model, const std::vector<size_t>& indices)
{
    std::vector<std::unique_ptr<TensorJob>> jobs;
    for (size_t slot = 0; slot < indices.size(); ++slot) {
        auto j = std::make_unique<TensorJob>();
        j->index = indices[slot];
        j->slot = slot;
        j->info = &model.tensors().at(indices[slot]);
        jobs.push_back(std::move(j));
    }
    return jobs;
}

} // namespace

BinnedHistogram TensorStats::linearHistogram(size_t bins) const
{
    if (!finite)
        return {};
    return histogram.linear(bins, min, max, {min, max});
}

BinnedHistogram TensorStats::symlogHistogram(size_t bins, double linthresh) const
{
    if (!finite)
        return {};
    if (!(linthresh > 0))
        linthresh = std > 0 ? std : (absmax > 0 ? absmax : 1.0);
    return histogram.symlog(bins, linthresh, min, max, {min, max});
}

TensorStats mergeStats(const std::vector<const TensorStats*>& parts)
{
    TensorStats out;
    Moments total;
    double mn = std::numeric_limits<double>::infinity(), mx = -mn;
    for (const TensorStats* p : parts) {
        out.count += p->count;
        out.finite += p->finite;
        out.zeros += p->zeros;
        out.nan += p->nan;
        out.inf += p->inf;
        out.histogram.merge(p->histogram);
        out.channelAbsmax.insert(out.channelAbsmax.end(), p->channelAbsmax.begin(), p->channelAbsmax.end());
        out.channelStd.insert(out.channelStd.end(), p->channelStd.begin(), p->channelStd.end());
        if (p->finite) {
            total.merge({double(p->finite), p->mean, p->m2, p->m3, p->m4});
            mn = std::min(mn, p->min);
            mx = std::max(mx, p->max);
        }
    }
    out.min = mn;
    out.max = mx;
    out.mean = total.mean;
    out.m2 = total.m2;
    out.m3 = total.m3;
    out.m4 = total.m4;
    if (out.finite == 0) {
        out.min = out.max = out.absmax = out.mean = out.std = out.kurtosis = kNaN;
    } else {
        const double n = double(out.finite);
        out.absmax = std::max(std::fabs(mn), std::fabs(mx));
        out.std = std::sqrt(out.m2 / n);
        out.kurtosis = out.m2 > 0 ? n * out.m4 / (out.m2 * out.m2) - 3.0 : kNaN;
    }
    // σ-counts of a union cannot be derived from the parts' own σ-counts; leave them unset.
    return out;
}

TensorStats computeTensorStats(const Model& model, const TensorInfo& tensor, const StatsOptions& options,
                               JobControl* job)
{
    size_t index = model.tensors().size();
    for (size_t i = 0; i < model.tensors().size(); ++i)
        if (&model.tensors()[i] == &tensor)
            index = i;
    if (index == model.tensors().size()) { // a copy: look it up by name
        const TensorInfo* found = model.find(tensor.name);
        if (!found || found->dtype != tensor.dtype || found->shape != tensor.shape)
            throw Error(ErrorCode::Internal, "tensor " + tensor.name + " is not part of the model");
        index = static_cast<size_t>(found - model.tensors().data());
    }
    auto jobs = makeJobs(model, {index});
    Engine engine(model, job, options.threads);
    engine.run(jobs, options.chunkBytes, {});
    if (!jobs[0]->result.error.empty())
        throw Error(ErrorCode::Unsupported, tensor.name + ": " + jobs[0]->result.error);
    return std::move(jobs[0]->result);
}

std::vector<TensorStats> analyzeModel(const Model& model, const StatsOptions& options, JobControl* job,
                                      const TensorStatsCallback& onTensorDone)
{
    std::vector<size_t> indices = options.tensors;
    if (indices.empty())
        for (size_t i = 0; i < model.tensors().size(); ++i)
            indices.push_back(i);
    for (size_t i : indices)
        if (i >= model.tensors().size())
            throw Error(ErrorCode::Internal, "tensor index out of range");

    std::vector<TensorStats> results(indices.size());
    std::vector<char> have(indices.size(), 0);
    std::optional<StatsCache> cache;
    if (options.useCache) {
        cache.emplace(model, options.cacheDir);
        cache->load();
        for (size_t slot = 0; slot < indices.size(); ++slot) {
            if (const TensorStats* hit = cache->find(model.tensors()[indices[slot]])) {
                results[slot] = *hit;
                results[slot].fromCache = true;
                have[slot] = 1;
                if (onTensorDone)
                    onTensorDone(indices[slot], results[slot]);
            }
        }
    }
    std::vector<size_t> todo;
    for (size_t slot = 0; slot < indices.size(); ++slot)
        if (!have[slot])
            todo.push_back(indices[slot]);
    auto jobs = makeJobs(model, todo);
    std::vector<char> done(model.tensors().size(), 0); // by tensor index; written under the callback lock
    auto callback = [&](size_t index, const TensorStats& stats) {
        done[index] = 1;
        if (onTensorDone)
            onTensorDone(index, stats);
    };
    auto store = [&] {
        if (!cache)
            return;
        bool added = false;
        for (auto& j : jobs)
            if (done[j->index] && j->result.error.empty()) {
                cache->insert(j->result);
                added = true;
            }
        if (added)
            cache->save();
    };
    Engine engine(model, job, options.threads);
    try {
        engine.run(jobs, options.chunkBytes, callback);
    } catch (const CancelledError&) {
        store();
        throw;
    }
    store();
    size_t next = 0;
    for (size_t slot = 0; slot < indices.size(); ++slot)
        if (!have[slot])
            results[slot] = std::move(jobs[next++]->result);
    return results;
}

} // namespace qs
