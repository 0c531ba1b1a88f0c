#include "core/quant/sensitivity.h"

#include "core/model/model.h"
#include "core/model/modelidentity.h"
#include "core/quant/format.h"
#include "core/quant/imatrix.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/util/job.h"
#include "core/util/threadpool.h"

#include <QByteArray>
#include <QCryptographicHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>

namespace qs {

std::string sensitivitySkipReason(const TensorInfo& t)
{
    if (t.shape.size() < 2)
        return "a " + std::to_string(t.shape.size()) + "-D tensor (norm, bias or scalar): kept in high precision";
    if (t.elements() == 0)
        return "empty";
    if (!dtypeInfo(t.dtype).decodable)
        return std::string("stored as ") + dtypeName(t.dtype) + ", which cannot be decoded";
    if (t.role.role == TensorRole::Conv)
        return "a convolution kernel (" + std::to_string(t.shape.size()) +
               "-D): not measured yet (runtimes flatten kernels differently per layout); the plan's format "
               "applies, its error is not known";
    if (t.shape.size() > 2)
        return "a stacked " + std::to_string(t.shape.size()) +
               "-D tensor (e.g. all experts of a layer): not measured yet; the plan's format applies, its error "
               "is not known";
    if (!roleIsQuantizable(t.role.role) && t.role.role != TensorRole::Other)
        return std::string("role ") + roleName(t.role.role) + " stays in high precision";
    return {};
}

bool isSensitivityCandidate(const TensorInfo& t)
{
    return sensitivitySkipReason(t).empty();
}

namespace {

// ---- cache ----

// Bump whenever a quantizer or metric changes its results: old caches then no longer match. The project
// version is part of the key too.
constexpr const char* kCacheVersion = "quantscope-sensitivity-cache 1";
constexpr qint64 kMaxCacheBytes = qint64(256) << 20;

std::string sha256Hex(const QByteArray& bytes)
{
    return QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex().toStdString();
}

// Empty when a file cannot be stat'ed (then nothing is cached).
std::string modelKey(const Model& model)
{
    const std::string identity = modelIdentity(model).key;
    if (identity.empty())
        return {};
    return std::string(kCacheVersion) + ' ' + QS_VERSION + '\n' + identity;
}

std::string cellKey(const TensorInfo& t, const std::string& format, const std::string& importanceTag)
{
    return t.name + '\n' + dtypeName(t.dtype) + '\n' + std::to_string(t.shape[0]) + 'x' +
           std::to_string(t.shape[1]) + '\n' + format + '\n' + importanceTag;
}

QJsonValue encodeDouble(double v)
{
    if (std::isfinite(v))
        return v;
    return QString::fromLatin1(std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

std::optional<double> decodeDouble(const QJsonValue& v)
{
    if (v.isDouble())
        return v.toDouble();
    const QString s = v.toString();
    if (s == QLatin1String("inf"))
        return std::numeric_limits<double>::infinity();
    if (s == QLatin1String("-inf"))
        return -std::numeric_limits<double>::infinity();
    if (s == QLatin1String("nan"))
        return std::numeric_limits<double>::quiet_NaN();
    return std::nullopt;
}

using CellMap = std::map<std::string, SensitivityResult>;

CellMap loadCache(const std::filesystem::path& file, const std::string& key)
{
    CellMap cells;
    const auto bytes = key.empty() ? std::nullopt : readCacheFile(file, kMaxCacheBytes);
    if (!bytes)
        return cells;
    const QJsonDocument doc = QJsonDocument::fromJson(QByteArray::fromStdString(*bytes));
    const QJsonObject root = doc.object();
    if (root.value(QStringLiteral("version")).toString().toStdString() != kCacheVersion ||
        root.value(QStringLiteral("key")).toString().toStdString() != key)
        return cells;
    for (const auto& v : root.value(QStringLiteral("cells")).toArray()) {
        const QJsonObject o = v.toObject();
        auto num = [&](const char* k) { return decodeDouble(o.value(QLatin1String(k))); };
        const auto rows = num("rows"), cols = num("cols"), bytes = num("bytes"), count = num("count");
        const auto mse = num("mse"), rel = num("rel_mse"), sqnr = num("sqnr_db"), maxAbs = num("max_abs_err"),
                   cosine = num("cosine"), meanSquare = num("mean_square");
        const QString cell = o.value(QStringLiteral("cell")).toString();
        if (cell.isEmpty() || !rows || !cols || !bytes || !count || !mse || !rel || !sqnr || !maxAbs ||
            !cosine || !meanSquare || *rows < 1 || *cols < 1 || *rows > 9e15 || *cols > 9e15 || *bytes < 0 ||
            *count < 0)
            return {}; // anything malformed: ignore the whole file
        SensitivityResult r;
        r.tensor = o.value(QStringLiteral("tensor")).toString().toStdString();
        r.format = o.value(QStringLiteral("format")).toString().toStdString();
        r.rows = static_cast<uint64_t>(*rows);
        r.cols = static_cast<uint64_t>(*cols);
        r.bytes = static_cast<uint64_t>(*bytes);
        r.bitsPerWeight = 8.0 * static_cast<double>(r.bytes) / (static_cast<double>(r.rows) * r.cols);
        r.metrics.count = static_cast<uint64_t>(*count);
        r.metrics.mse = *mse;
        r.metrics.relMse = *rel;
        r.metrics.sqnrDb = *sqnr;
        r.metrics.maxAbsErr = *maxAbs;
        r.metrics.cosine = *cosine;
        r.metrics.meanSquare = *meanSquare;
        if (o.contains(QStringLiteral("weighted_mse"))) {
            const auto w = num("weighted_mse");
            if (!w)
                return {};
            r.metrics.weightedMse = *w;
        }
        r.fromCache = true;
        cells[cell.toStdString()] = std::move(r);
    }
    return cells;
}

bool saveCache(const std::filesystem::path& file, const std::string& key, const CellMap& cells)
{
    QJsonArray list;
    for (const auto& [cell, r] : cells) {
        QJsonObject o;
        o[QStringLiteral("cell")] = QString::fromStdString(cell);
        o[QStringLiteral("tensor")] = QString::fromStdString(r.tensor);
        o[QStringLiteral("format")] = QString::fromStdString(r.format);
        o[QStringLiteral("rows")] = static_cast<double>(r.rows);
        o[QStringLiteral("cols")] = static_cast<double>(r.cols);
        o[QStringLiteral("bytes")] = static_cast<double>(r.bytes);
        o[QStringLiteral("count")] = static_cast<double>(r.metrics.count);
        o[QStringLiteral("mse")] = encodeDouble(r.metrics.mse);
        o[QStringLiteral("rel_mse")] = encodeDouble(r.metrics.relMse);
        o[QStringLiteral("sqnr_db")] = encodeDouble(r.metrics.sqnrDb);
        o[QStringLiteral("max_abs_err")] = encodeDouble(r.metrics.maxAbsErr);
        o[QStringLiteral("cosine")] = encodeDouble(r.metrics.cosine);
        o[QStringLiteral("mean_square")] = encodeDouble(r.metrics.meanSquare);
        if (r.metrics.weightedMse)
            o[QStringLiteral("weighted_mse")] = encodeDouble(*r.metrics.weightedMse);
        list.append(o);
    }
    QJsonObject root;
    root[QStringLiteral("version")] = QString::fromLatin1(kCacheVersion);
    root[QStringLiteral("key")] = QString::fromStdString(key);
    root[QStringLiteral("cells")] = list;
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    QSaveFile out(QString::fromStdString(file.string()));
    if (!out.open(QIODevice::WriteOnly))
        return false;
    out.write(QJsonDocument(root).toJson(QJsonDocument::Compact));
    return out.commit();
}

struct FormatSlot {
    std::shared_ptr<const QuantFormat> format;
    ErrorAccumulator acc;
    std::string error;
    std::string cell; // cache key of this tensor x format
    std::optional<SensitivityResult> cached;
};

class Runner {
public:
    Runner(const Model& model, const SensitivityOptions& options, const SensitivityCallback& onResult,
           JobControl* job)
        : m_model(model), m_options(options), m_onResult(onResult), m_job(job)
    {
        const auto names = options.formats.empty() ? defaultSensitivityFormats() : options.formats;
        for (const auto& n : names) {
            auto f = findFormat(n);
            if (!f)
                throw Error(ErrorCode::BadValue, "unknown quantization format '" + n + "'");
            m_formats.push_back(std::move(f));
        }
        for (const auto& t : model.tensors())
            if (isSensitivityCandidate(t) && (!options.tensorFilter || options.tensorFilter(t)))
                m_tensors.push_back(&t);
        for (const auto* t : m_tensors)
            m_totalBytes += t->bytes;
        if (options.useCache) {
            m_cacheFile = sensitivityCacheFile(model, options.cacheDir);
            m_cacheKey = m_cacheFile.empty() ? std::string() : modelKey(model);
            if (!m_cacheKey.empty())
                m_cells = loadCache(m_cacheFile, m_cacheKey);
        }
    }

    std::vector<SensitivityResult> run()
    {
        std::vector<std::vector<SensitivityResult>> perTensor(m_tensors.size());
        // Cached tensors first (instant), then by size as asked; stable, so ties keep the model's order.
        std::vector<size_t> order(m_tensors.size());
        std::iota(order.begin(), order.end(), size_t(0));
        std::vector<char> cached(m_tensors.size(), 0);
        for (size_t i = 0; i < m_tensors.size(); ++i)
            cached[i] = hasCachedCells(*m_tensors[i]) ? 1 : 0;
        const SensitivityOrder how = m_options.order;
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            if (cached[a] != cached[b])
                return cached[a] > cached[b];
            const uint64_t ea = m_tensors[a]->elements(), eb = m_tensors[b]->elements();
            switch (how) {
            case SensitivityOrder::SmallestFirst:
                return ea < eb;
            case SensitivityOrder::LargestFirst:
                return ea > eb;
            case SensitivityOrder::ModelOrder:
                break;
            }
            return false;
        });
        std::atomic<size_t> next{0};
        std::exception_ptr failure;
        std::mutex failureMutex;
        std::atomic<bool> stop{false};
        auto worker = [&] {
            try {
                for (;;) {
                    if (stop.load())
                        return;
                    const size_t i = next.fetch_add(1);
                    if (i >= order.size())
                        return;
                    perTensor[order[i]] = runTensor(*m_tensors[order[i]]);
                }
            } catch (...) {
                std::lock_guard lock(failureMutex);
                if (!failure)
                    failure = std::current_exception();
                stop.store(true);
            }
        };
        const auto threads =
            static_cast<unsigned>(std::min<size_t>(resolveThreads(m_options.threads), std::max<size_t>(1, m_tensors.size())));
        ThreadPool::instance().runWorkers(threads, [&](unsigned) { worker(); });
        // What was finished is kept even when the run was cancelled or failed.
        if (!m_cacheKey.empty() && !m_newCells.empty()) {
            CellMap merged = m_cells;
            for (auto& [cell, r] : m_newCells)
                merged[cell] = r;
            saveCache(m_cacheFile, m_cacheKey, merged);
        }
        if (failure)
            std::rethrow_exception(failure);
        reportProgress(m_job, 1.0, "sensitivity");
        std::vector<SensitivityResult> all;
        for (auto& v : perTensor)
            for (auto& r : v)
                all.push_back(std::move(r));
        return all;
    }

private:
    // Whether the loaded cache holds any cell of this tensor (cell keys start with its name and a newline).
    bool hasCachedCells(const TensorInfo& t) const
    {
        const std::string prefix = t.name + '\n';
        const auto it = m_cells.lower_bound(prefix);
        return it != m_cells.end() && it->first.compare(0, prefix.size(), prefix) == 0;
    }

    void deliver(const SensitivityResult& r)
    {
        if (!m_onResult)
            return;
        std::lock_guard lock(m_callbackMutex);
        m_onResult(r);
    }

    std::vector<SensitivityResult> runTensor(const TensorInfo& t)
    {
        const uint64_t rows = t.shape[0], cols = t.shape[1];
        std::span<const float> importance;
        if (m_options.importance)
            importance = m_options.importance->importanceFor(t.name, cols);
        const float* imp = importance.empty() ? nullptr : importance.data();
        const float* quantImp = m_options.importanceWeightedQuantization ? imp : nullptr;
        std::string importanceTag;
        if (imp && !m_cacheKey.empty())
            importanceTag = sha256Hex(QByteArray::fromRawData(reinterpret_cast<const char*>(imp),
                                                              static_cast<qsizetype>(cols * sizeof(float))))
                                .substr(0, 32) +
                            (quantImp ? ":q" : ":m");

        std::vector<FormatSlot> formatSlots;
        size_t toCompute = 0;
        bool needRange = false;
        uint64_t alignment = 1;
        for (const auto& f : m_formats) {
            FormatSlot s;
            s.format = f;
            if (!f->available())
                s.error = f->name() + " codec is not available in this build";
            else if (!f->supports(rows, cols) || !f->storedBytes(rows, cols))
                s.error = f->name() + " does not support a " + std::to_string(rows) + " x " +
                          std::to_string(cols) + " tensor";
            if (s.error.empty() && !m_cacheKey.empty()) {
                s.cell = cellKey(t, f->name(), importanceTag);
                if (auto it = m_cells.find(s.cell); it != m_cells.end()) {
                    // Identity and size come from the tensor and the format, not from the file.
                    s.cached = it->second;
                    s.cached->tensor = t.name;
                    s.cached->format = f->name();
                    s.cached->rows = rows;
                    s.cached->cols = cols;
                    s.cached->bytes = *f->storedBytes(rows, cols);
                    s.cached->bitsPerWeight =
                        8.0 * static_cast<double>(s.cached->bytes) / static_cast<double>(rows * cols);
                    if (s.cached->metrics.count != rows * cols)
                        s.cached.reset();
                }
            }
            if (s.error.empty() && !s.cached) {
                needRange = needRange || f->needsTensorRange();
                alignment = std::lcm(alignment, std::max<uint64_t>(1, f->rowAlignment(cols)));
                ++toCompute;
            }
            formatSlots.push_back(std::move(s));
        }

        // What is known already (cached cells, formats that cannot take this tensor) is handed over now.
        std::vector<std::optional<SensitivityResult>> results(formatSlots.size());
        for (size_t k = 0; k < formatSlots.size(); ++k) {
            const FormatSlot& s = formatSlots[k];
            if (s.cached)
                results[k] = *s.cached;
            else if (!s.error.empty())
                results[k] = failedCell(t, s);
            if (results[k])
                deliver(*results[k]);
        }

        const uint64_t firstRow = toCompute ? 0 : rows; // everything cached: the weights are not read
        uint64_t chunkRows = std::max<uint64_t>(1, m_options.chunkElements / cols);
        chunkRows = std::max(alignment, chunkRows / alignment * alignment);
        chunkRows = std::min(chunkRows, rows);
        std::vector<float> src(toCompute ? chunkRows * cols : 0), out(toCompute ? chunkRows * cols : 0);

        TensorRange range;
        if (needRange) {
            for (uint64_t r = firstRow; r < rows; r += chunkRows) {
                checkCancel(m_job);
                const uint64_t n = std::min(chunkRows, rows - r);
                m_model.decodeRows(t, r, n, src.data());
                for (uint64_t i = 0; i < n * cols; ++i) {
                    range.min = std::min(range.min, src[i]);
                    range.max = std::max(range.max, src[i]);
                }
            }
        }
        // Each chunk is decoded once and round-tripped through every format.
        for (uint64_t r = firstRow; r < rows; r += chunkRows) {
            checkCancel(m_job);
            const uint64_t n = std::min(chunkRows, rows - r);
            m_model.decodeRows(t, r, n, src.data());
            for (auto& s : formatSlots) {
                if (!s.error.empty() || s.cached)
                    continue;
                try {
                    s.format->roundTripChunk(src.data(), n, cols, out.data(), quantImp, range);
                } catch (const CancelledError&) {
                    throw;
                } catch (const std::exception& e) {
                    s.error = e.what();
                    continue;
                }
                s.acc.add(src.data(), out.data(), n, cols, imp);
            }
            addProgress(bytesOfRows(t, r + n) - bytesOfRows(t, r));
        }
        if (!toCompute)
            addProgress(t.bytes);

        std::vector<SensitivityResult> all;
        for (size_t k = 0; k < formatSlots.size(); ++k) {
            if (results[k]) {
                all.push_back(std::move(*results[k]));
                continue;
            }
            FormatSlot& s = formatSlots[k];
            SensitivityResult res = failedCell(t, s); // identity; error set when a chunk failed
            if (s.error.empty()) {
                res.bytes = *s.format->storedBytes(t.shape[0], t.shape[1]);
                res.bitsPerWeight = 8.0 * static_cast<double>(res.bytes) / static_cast<double>(t.elements());
                res.metrics = s.acc.result();
            }
            if (res.ok() && !s.cell.empty()) {
                std::lock_guard lock(m_cacheMutex);
                m_newCells.emplace_back(s.cell, res);
            }
            deliver(res);
            all.push_back(std::move(res));
        }
        return all;
    }

    static SensitivityResult failedCell(const TensorInfo& t, const FormatSlot& s)
    {
        SensitivityResult res;
        res.tensor = t.name;
        res.format = s.format->name();
        res.rows = t.shape[0];
        res.cols = t.shape[1];
        res.error = s.error;
        return res;
    }

    // Bytes of tensor data in rows [0, rows): exact at the ends, so a tensor's chunks add up to t.bytes.
    static uint64_t bytesOfRows(const TensorInfo& t, uint64_t rows)
    {
        const uint64_t all = t.shape[0];
        return rows >= all ? t.bytes : static_cast<uint64_t>(static_cast<long double>(t.bytes) * rows / all);
    }

    void addProgress(uint64_t bytes)
    {
        if (!m_job || m_totalBytes == 0)
            return;
        std::lock_guard lock(m_progressMutex);
        m_doneBytes += bytes;
        m_job->reportBytes(std::min(m_doneBytes, m_totalBytes), m_totalBytes, "sensitivity");
    }

    const Model& m_model;
    const SensitivityOptions& m_options;
    const SensitivityCallback& m_onResult;
    JobControl* m_job;
    std::vector<std::shared_ptr<const QuantFormat>> m_formats;
    std::vector<const TensorInfo*> m_tensors;
    uint64_t m_totalBytes = 0;
    uint64_t m_doneBytes = 0; // guarded by m_progressMutex
    std::mutex m_progressMutex;
    std::mutex m_callbackMutex; // serialises m_onResult
    std::filesystem::path m_cacheFile;
    std::string m_cacheKey;                                            // empty: no cache
    CellMap m_cells;                                                   // loaded; read-only while workers run
    std::vector<std::pair<std::string, SensitivityResult>> m_newCells; // guarded by m_cacheMutex
    std::mutex m_cacheMutex;
};

} // namespace

std::filesystem::path sensitivityCacheFile(const Model& model, const std::filesystem::path& cacheDir)
{
    return modelCacheFile(model, cacheDir, ".sensitivity.json");
}

std::vector<SensitivityResult> computeSensitivity(const Model& model, const SensitivityOptions& options,
                                                  const SensitivityCallback& onResult, JobControl* job)
{
    return Runner(model, options, onResult, job).run();
}

} // namespace qs
