#include "core/quant/sensitivity.h"

#include "core/model/matrixview.h"
#include "core/model/model.h"
#include "core/model/modelidentity.h"
#include "core/quant/format.h"
#include "core/util/strings.h"
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
#include <cstdio>
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
    // Convolution kernels are measured as runtimes quantize them, one row per output channel
    // (core/model/matrixview.h).
    if (t.shape.size() > 2 && t.role.role != TensorRole::Conv)
        return "a stacked " + std::to_string(t.shape.size()) +
               "-D tensor (e.g. all experts of a layer): not measured yet; the plan's format applies, its error "
               "is not known";
    if (!roleIsQuantizable(t.role.role) && t.role.role != TensorRole::Other &&
        t.role.role != TensorRole::Conv)
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
// 2: layouts, conv kernels; 3: GPT-2 Conv1D and Keras depthwise kernels per output channel
constexpr const char* kCacheVersion = "quantscope-sensitivity-cache 3";
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
    return t.name + '\n' + dtypeName(t.dtype) + '\n' + joinShape(t.shape, "x") + '\n' + format + '\n' +
           importanceTag;
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
        if (o.contains(QStringLiteral("sampled_rows"))) {
            const auto sampledRows = num("sampled_rows"), lo = num("mse_low"), hi = num("mse_high"),
                       slo = num("sqnr_low_db"), shi = num("sqnr_high_db");
            if (!sampledRows || !lo || !hi || !slo || !shi || *sampledRows < 1 || *sampledRows > *rows)
                return {};
            SensitivitySample sample;
            sample.rowsMeasured = static_cast<uint64_t>(*sampledRows);
            sample.fraction = static_cast<double>(sample.rowsMeasured) / static_cast<double>(r.rows);
            sample.mseLow = *lo;
            sample.mseHigh = *hi;
            sample.sqnrLowDb = *slo;
            sample.sqnrHighDb = *shi;
            if (o.contains(QStringLiteral("weighted_mse_low"))) {
                const auto wlo = num("weighted_mse_low"), whi = num("weighted_mse_high");
                if (!wlo || !whi)
                    return {};
                sample.weightedMseLow = *wlo;
                sample.weightedMseHigh = *whi;
            }
            r.sample = sample;
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
        if (r.sample) {
            o[QStringLiteral("sampled_rows")] = static_cast<double>(r.sample->rowsMeasured);
            o[QStringLiteral("mse_low")] = encodeDouble(r.sample->mseLow);
            o[QStringLiteral("mse_high")] = encodeDouble(r.sample->mseHigh);
            o[QStringLiteral("sqnr_low_db")] = encodeDouble(r.sample->sqnrLowDb);
            o[QStringLiteral("sqnr_high_db")] = encodeDouble(r.sample->sqnrHighDb);
            if (r.sample->weightedMseLow && r.sample->weightedMseHigh) {
                o[QStringLiteral("weighted_mse_low")] = encodeDouble(*r.sample->weightedMseLow);
                o[QStringLiteral("weighted_mse_high")] = encodeDouble(*r.sample->weightedMseHigh);
            }
        }
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

// Sums of one sampled row group in one format: squared error, importance-weighted squared error.
struct UnitSums {
    double e2 = 0, we2 = 0;
};

struct FormatSlot {
    std::shared_ptr<const QuantFormat> format;
    ErrorAccumulator acc;
    std::vector<UnitSums> units; // sampled mode: one entry per measured row group
    std::string error;
    std::string cell; // cache key of this tensor x format
    std::optional<SensitivityResult> cached;
};

// ---- sampling ----

uint64_t fnv1a(const std::string& text)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t splitmix64(uint64_t& state)
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// The row groups (of groupRows rows) a sampled run measures, ascending: a simple random sample without
// replacement drawn by a partial Fisher-Yates shuffle seeded with the seed, the tensor's name and shape. Empty:
// measure every row (exact mode, or a sample that would cover half the tensor or more).
std::vector<uint64_t> sampleGroups(const TensorInfo& t, const MatrixView& view, uint64_t groupRows,
                                   const SensitivityOptions& o)
{
    const uint64_t rows = view.rows;
    const uint64_t groups = (rows + groupRows - 1) / groupRows;
    const double fraction = std::clamp(o.sampleFraction, 0.0, 1.0);
    const uint64_t wantRows =
        std::max<uint64_t>(o.sampleMinRows, static_cast<uint64_t>(std::ceil(fraction * static_cast<double>(rows))));
    const uint64_t k = std::max<uint64_t>(1, (wantRows + groupRows - 1) / groupRows);
    if (o.exact || 2 * k >= groups)
        return {};
    uint64_t state =
        o.sampleSeed ^ fnv1a(t.name + '\n' + std::to_string(rows) + 'x' + std::to_string(view.cols));
    std::vector<uint64_t> index(groups);
    std::iota(index.begin(), index.end(), uint64_t(0));
    for (uint64_t i = 0; i < k; ++i)
        std::swap(index[i], index[i + splitmix64(state) % (groups - i)]);
    index.resize(k);
    std::sort(index.begin(), index.end());
    return index;
}

// Sums of squares of original values: plain and importance-weighted (sum_j imp_j x_ij^2).
struct SquareSums {
    double x2 = 0, wx2 = 0;
};

// rows x cols values; importance: cols values or null. Independent lanes, so that the loop vectorises.
SquareSums squareSums(const float* x, uint64_t rows, uint64_t cols, const float* imp)
{
    constexpr uint64_t kLanes = 8;
    SquareSums total;
    for (uint64_t r = 0; r < rows; ++r) {
        const float* row = x + r * cols;
        double a[kLanes] = {}, w[kLanes] = {};
        uint64_t j = 0;
        for (; j + kLanes <= cols; j += kLanes)
            for (uint64_t k = 0; k < kLanes; ++k)
                a[k] += static_cast<double>(row[j + k]) * row[j + k];
        if (imp)
            for (uint64_t i = 0; i + kLanes <= cols; i += kLanes)
                for (uint64_t k = 0; k < kLanes; ++k)
                    w[k] += static_cast<double>(imp[i + k]) * row[i + k] * row[i + k];
        for (uint64_t k = 0; k < kLanes; ++k) {
            total.x2 += a[k];
            total.wx2 += w[k];
        }
        for (; j < cols; ++j) {
            const double v = static_cast<double>(row[j]) * row[j];
            total.x2 += v;
            if (imp)
                total.wx2 += static_cast<double>(imp[j]) * v;
        }
    }
    return total;
}

// Two-sided 95 % quantile of Student's t with df degrees of freedom (Cornish-Fisher expansion around the
// normal quantile; within 0.3 % of the exact value from df = 5 on).
double t95(double df)
{
    constexpr double z = 1.959963984540054;
    const double z3 = z * z * z, z5 = z3 * z * z;
    return z + (z3 + z) / (4 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96 * df * df);
}

// The ratio estimator sum(num) / sum(den) over the sampled groups and its standard error: linearised
// (residuals num_i - R den_i), with the finite-population correction 1 - k / population. Infinite standard
// error from fewer than two groups.
std::pair<double, double> ratioEstimate(const std::vector<double>& num, const std::vector<double>& den,
                                        uint64_t population)
{
    const size_t k = num.size();
    double sn = 0, sd = 0;
    for (size_t i = 0; i < k; ++i) {
        sn += num[i];
        sd += den[i];
    }
    const double ratio = sd > 0 ? sn / sd : 0.0;
    if (k < 2 || sd <= 0)
        return {ratio, std::numeric_limits<double>::infinity()};
    double s2 = 0;
    for (size_t i = 0; i < k; ++i) {
        const double d = num[i] - ratio * den[i];
        s2 += d * d;
    }
    s2 /= static_cast<double>(k - 1);
    const double fpc = std::max(0.0, 1.0 - static_cast<double>(k) / static_cast<double>(population));
    const double meanDen = sd / static_cast<double>(k);
    return {ratio, std::sqrt(fpc * s2 / static_cast<double>(k)) / meanDen};
}

double sqnrOf(double relMse)
{
    return relMse > 0 ? -10.0 * std::log10(relMse) : std::numeric_limits<double>::infinity();
}

// What a sampled cell's estimates rest on: per sampled group its rows, its squares and the format's errors;
// the whole tensor's squares (exact, from the cheap pass).
struct SampleFrame {
    std::vector<uint64_t> groupRows;
    std::vector<SquareSums> groupSquares;
    uint64_t population = 0; // row groups in the tensor
    uint64_t rows = 0, cols = 0;
    double importanceSum = 0; // sum_j imp_j; 0 without importance
    SquareSums whole;
};

// Point estimates and intervals of a sampled cell. The error relative to the original's energy is estimated
// (ratio estimator: rows of large weights have large errors, so the ratio varies far less than the error);
// MSE and weighted MSE are that ratio times the exactly known energy of the whole tensor.
SensitivitySample sampleEstimate(const std::vector<UnitSums>& units, const SampleFrame& f, ErrorMetrics& m)
{
    SensitivitySample s;
    for (const uint64_t n : f.groupRows)
        s.rowsMeasured += n;
    s.fraction = static_cast<double>(s.rowsMeasured) / static_cast<double>(f.rows);
    s.confidence = 0.95;
    const size_t k = units.size();
    std::vector<double> e2(k), x2(k), we2(k), wx2(k);
    for (size_t i = 0; i < k; ++i) {
        e2[i] = units[i].e2;
        we2[i] = units[i].we2;
        x2[i] = f.groupSquares[i].x2;
        wx2[i] = f.groupSquares[i].wx2;
    }
    const double q = t95(static_cast<double>(std::max<size_t>(k, 2) - 1));
    const double values = static_cast<double>(f.rows) * static_cast<double>(f.cols);
    const auto [rel, relSe] = ratioEstimate(e2, x2, f.population);
    const double relLow = std::max(0.0, rel - q * relSe), relHigh = rel + q * relSe;
    m.relMse = rel;
    m.sqnrDb = sqnrOf(rel);
    m.meanSquare = f.whole.x2 / values;
    m.mse = rel * m.meanSquare;
    s.mseLow = relLow * m.meanSquare;
    s.mseHigh = relHigh * m.meanSquare;
    s.sqnrLowDb = sqnrOf(relHigh);
    s.sqnrHighDb = sqnrOf(relLow);
    if (f.importanceSum > 0 && m.weightedMse) {
        const auto [w, wSe] = ratioEstimate(we2, wx2, f.population);
        const double scale = f.whole.wx2 / (static_cast<double>(f.rows) * f.importanceSum);
        m.weightedMse = w * scale;
        s.weightedMseLow = std::max(0.0, w - q * wSe) * scale;
        s.weightedMseHigh = (w + q * wSe) * scale;
    }
    return s;
}

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
        // The matrix a runtime quantizes: one row per output channel (transposed from [..., in, out] layouts,
        // a convolution's kernel flattened into its row), read through a bounded window.
        MatrixRowReader reader(m_model, t, std::max<uint64_t>(m_options.chunkElements, 1) * 4);
        const MatrixView view = reader.view();
        const uint64_t rows = view.rows, cols = view.cols;
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
        uint64_t groupRows = 1; // sampled row groups: whole blocks of every format that takes the tensor
        for (const auto& f : m_formats) {
            FormatSlot s;
            s.format = f;
            if (!f->available())
                s.error = f->name() + " codec is not available in this build";
            else if (!f->supports(rows, cols) || !f->storedBytes(rows, cols))
                s.error = f->name() + " does not support a " + std::to_string(rows) + " x " +
                          std::to_string(cols) + " tensor";
            else
                groupRows = std::lcm(groupRows, std::max<uint64_t>(1, f->rowAlignment(cols)));
            formatSlots.push_back(std::move(s));
        }
        const std::vector<uint64_t> groups = sampleGroups(t, view, groupRows, m_options);
        const bool sampled = !groups.empty();
        uint64_t sampledRows = 0;
        for (const uint64_t g : groups)
            sampledRows += std::min(groupRows, rows - g * groupRows);

        size_t toCompute = 0;
        bool needRange = false;
        uint64_t alignment = 1;
        for (FormatSlot& s : formatSlots) {
            const auto& f = s.format;
            if (s.error.empty() && !m_cacheKey.empty()) {
                // An exact cell serves a sampled run too; a sampled one only a run sampling the same way.
                const std::string exactCell = cellKey(t, f->name(), importanceTag);
                s.cell = sampled ? exactCell + sampleTag() : exactCell;
                auto it = m_cells.find(exactCell);
                if (it == m_cells.end() || it->second.sample) {
                    it = sampled ? m_cells.find(s.cell) : m_cells.end();
                    if (it != m_cells.end() && !it->second.sample)
                        it = m_cells.end(); // a sampled key holding an exact-looking cell: malformed
                }
                if (it != m_cells.end()) {
                    // Identity and size come from the tensor and the format, not from the file.
                    s.cached = it->second;
                    s.cached->tensor = t.name;
                    s.cached->format = f->name();
                    s.cached->rows = rows;
                    s.cached->cols = cols;
                    s.cached->bytes = *f->storedBytes(rows, cols);
                    s.cached->bitsPerWeight =
                        8.0 * static_cast<double>(s.cached->bytes) / static_cast<double>(rows * cols);
                    const uint64_t measured = s.cached->sample ? s.cached->sample->rowsMeasured : rows;
                    if (s.cached->metrics.count != measured * cols)
                        s.cached.reset();
                }
            }
            if (s.error.empty() && !s.cached) {
                needRange = needRange || f->needsTensorRange();
                alignment = std::lcm(alignment, std::max<uint64_t>(1, f->rowAlignment(cols)));
                ++toCompute;
            }
        }

        // What is known already (cached cells, formats that cannot take this tensor) is handed over now.
        std::vector<std::optional<SensitivityResult>> results(formatSlots.size());
        for (size_t k = 0; k < formatSlots.size(); ++k) {
            const FormatSlot& s = formatSlots[k];
            if (s.cached)
                results[k] = *s.cached;
            else if (!s.error.empty())
                results[k] = failedCell(t, view, s);
            if (results[k])
                deliver(*results[k]);
        }

        const uint64_t firstRow = toCompute ? 0 : rows; // everything cached: the weights are not read
        uint64_t chunkRows = std::max<uint64_t>(1, m_options.chunkElements / cols);
        chunkRows = std::max(alignment, chunkRows / alignment * alignment);
        chunkRows = std::min(chunkRows, rows);
        std::vector<float> src(toCompute ? chunkRows * cols : 0), out(toCompute ? chunkRows * cols : 0);

        // The cheap full pass: the tensor's range for per-tensor scales, its energy for sampled estimates.
        TensorRange range;
        SampleFrame frame;
        if (needRange || sampled) {
            for (uint64_t r = firstRow; r < rows; r += chunkRows) {
                checkCancel(m_job);
                const uint64_t n = std::min(chunkRows, rows - r);
                reader.read(r, n, src.data());
                if (needRange)
                    for (uint64_t i = 0; i < n * cols; ++i) {
                        range.min = std::min(range.min, src[i]);
                        range.max = std::max(range.max, src[i]);
                    }
                if (sampled) {
                    const SquareSums part = squareSums(src.data(), n, cols, imp);
                    frame.whole.x2 += part.x2;
                    frame.whole.wx2 += part.wx2;
                }
            }
        }
        if (sampled && toCompute) {
            frame.population = (rows + groupRows - 1) / groupRows;
            frame.rows = rows;
            frame.cols = cols;
            if (imp)
                for (uint64_t j = 0; j < cols; ++j)
                    frame.importanceSum += imp[j];
            measureGroups(t, reader, groups, groupRows, sampledRows, formatSlots, quantImp, imp, range,
                          frame);
        }
        // Each chunk is decoded once and round-tripped through every format.
        for (uint64_t r = sampled ? rows : firstRow; r < rows; r += chunkRows) {
            checkCancel(m_job);
            const uint64_t n = std::min(chunkRows, rows - r);
            reader.read(r, n, src.data());
            for (auto& s : formatSlots) {
                if (!s.error.empty() || s.cached)
                    continue;
                if (!roundTrip(s, src.data(), n, cols, out.data(), quantImp, range))
                    continue;
                s.acc.add(src.data(), out.data(), n, cols, imp);
            }
            addProgress(bytesOfRows(t, rows, r + n) - bytesOfRows(t, rows, r));
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
            SensitivityResult res = failedCell(t, view, s); // identity; error set when a chunk failed
            if (s.error.empty()) {
                res.bytes = *s.format->storedBytes(rows, cols);
                res.bitsPerWeight = 8.0 * static_cast<double>(res.bytes) / static_cast<double>(t.elements());
                res.metrics = s.acc.result();
                if (sampled)
                    res.sample = sampleEstimate(s.units, frame, res.metrics);
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

    // One chunk through one format; false (and the slot's error set) when the format failed on it.
    static bool roundTrip(FormatSlot& s, const float* src, uint64_t n, uint64_t cols, float* out,
                          const float* quantImp, const TensorRange& range)
    {
        try {
            s.format->roundTripChunk(src, n, cols, out, quantImp, range);
            return true;
        } catch (const CancelledError&) {
            throw;
        } catch (const std::exception& e) {
            s.error = e.what();
            return false;
        }
    }

    // Sampled mode: the chosen row groups (ascending) are gathered into chunk buffers, consecutive groups
    // decoded together, each chunk round-tripped through every format; every group's sums are kept apart for
    // the intervals. A partial last group can only be the chunk's last (groups are ascending), so blocks
    // that span rows stay whole.
    void measureGroups(const TensorInfo& t, MatrixRowReader& reader, const std::vector<uint64_t>& groups,
                       uint64_t groupRows, uint64_t sampledRows, std::vector<FormatSlot>& formatSlots,
                       const float* quantImp, const float* imp, const TensorRange& range, SampleFrame& frame)
    {
        const uint64_t rows = reader.view().rows, cols = reader.view().cols;
        uint64_t chunkRows = std::max<uint64_t>(1, m_options.chunkElements / cols);
        chunkRows = std::max(groupRows, chunkRows / groupRows * groupRows);
        chunkRows = std::min(chunkRows, sampledRows);
        std::vector<float> src(chunkRows * cols), out(chunkRows * cols);
        auto sizeOf = [&](uint64_t g) { return std::min(groupRows, rows - g * groupRows); };
        uint64_t done = 0, reported = 0;
        for (size_t g = 0; g < groups.size();) {
            checkCancel(m_job);
            const size_t first = g;
            uint64_t n = 0;
            while (g < groups.size() && n + sizeOf(groups[g]) <= chunkRows) {
                // A run of consecutive groups is one decode.
                const uint64_t start = groups[g] * groupRows;
                uint64_t runRows = sizeOf(groups[g]);
                size_t end = g + 1;
                while (end < groups.size() && groups[end] == groups[end - 1] + 1 &&
                       n + runRows + sizeOf(groups[end]) <= chunkRows)
                    runRows += sizeOf(groups[end++]);
                reader.read(start, runRows, src.data() + n * cols);
                n += runRows;
                g = end;
            }
            for (size_t i = first, offset = 0; i < g; offset += sizeOf(groups[i]), ++i) {
                frame.groupRows.push_back(sizeOf(groups[i]));
                frame.groupSquares.push_back(squareSums(src.data() + offset * cols, sizeOf(groups[i]), cols, imp));
            }
            for (auto& s : formatSlots) {
                if (!s.error.empty() || s.cached)
                    continue;
                if (!roundTrip(s, src.data(), n, cols, out.data(), quantImp, range))
                    continue;
                uint64_t offset = 0;
                for (size_t i = first; i < g; ++i) {
                    const uint64_t m = sizeOf(groups[i]);
                    ErrorAccumulator one;
                    one.add(src.data() + offset * cols, out.data() + offset * cols, m, cols, imp);
                    s.units.push_back({one.sumE2(), one.sumWeightedE2()});
                    s.acc.merge(one);
                    offset += m;
                }
            }
            done += n;
            const uint64_t bytes = bytesOfRows(t, rows, done * rows / sampledRows);
            addProgress(bytes - reported);
            reported = bytes;
        }
    }

    std::string sampleTag() const
    {
        char buf[96];
        std::snprintf(buf, sizeof buf, "\nsampled %.17g %llu %llu", m_options.sampleFraction,
                      static_cast<unsigned long long>(m_options.sampleMinRows),
                      static_cast<unsigned long long>(m_options.sampleSeed));
        return buf;
    }

    static SensitivityResult failedCell(const TensorInfo& t, const MatrixView& view, const FormatSlot& s)
    {
        SensitivityResult res;
        res.tensor = t.name;
        res.format = s.format->name();
        res.rows = view.rows;
        res.cols = view.cols;
        res.error = s.error;
        return res;
    }

    // Bytes of tensor data in view rows [0, rows) of `all`: exact at the ends, so a tensor's chunks add up to
    // t.bytes.
    static uint64_t bytesOfRows(const TensorInfo& t, uint64_t all, uint64_t rows)
    {
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
