#include "core/infer/klsensitivity.h"

#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/quant/format.h"
#include "core/util/atomicfile.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/util/threadpool.h"

#include <QByteArray>
#include <QCryptographicHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

namespace qs {

const char* klGranularityName(KlGranularity g)
{
    return g == KlGranularity::Group ? "group" : "tensor";
}

namespace {

// Bump whenever the measurement changes its results: old caches then no longer match.
constexpr const char* kCacheVersion = "quantscope-kl-sensitivity-cache 1";
constexpr qint64 kMaxCacheBytes = qint64(64) << 20;

std::string joinLines(const std::vector<std::string>& v)
{
    std::string s;
    for (const auto& x : v)
        s += (s.empty() ? "" : "\n") + x;
    return s;
}

std::string cellKey(const std::string& unit, const std::vector<std::string>& tensors, const std::string& format)
{
    return unit + '\n' + format + '\n' + joinLines(tensors);
}

struct CachedCell {
    double deltaKl = 0, maxKl = 0, sameTop = 0;
};
using CellMap = std::map<std::string, CachedCell>;

std::string cacheKey(const Model& model, const std::string& windowsHash)
{
    const std::string identity = klModelKey(model);
    if (identity.empty())
        return {};
    return std::string(kCacheVersion) + ' ' + QS_VERSION + '\n' + identity + "windows " + windowsHash;
}

CellMap loadCache(const std::filesystem::path& file, const std::string& key)
{
    CellMap cells;
    const auto bytes = key.empty() ? std::nullopt : readCacheFile(file, kMaxCacheBytes);
    if (!bytes)
        return cells;
    const QJsonObject root = QJsonDocument::fromJson(QByteArray::fromStdString(*bytes)).object();
    if (root.value(QStringLiteral("version")).toString().toStdString() != kCacheVersion ||
        root.value(QStringLiteral("key")).toString().toStdString() != key)
        return cells;
    for (const QJsonValue& v : root.value(QStringLiteral("cells")).toArray()) {
        const QJsonObject o = v.toObject();
        const QJsonValue cell = o.value(QStringLiteral("cell")), d = o.value(QStringLiteral("delta_kl")),
                         m = o.value(QStringLiteral("max_kl")), s = o.value(QStringLiteral("same_top"));
        if (!cell.isString() || !d.isDouble() || !m.isDouble() || !s.isDouble() || !(d.toDouble() >= 0))
            return {}; // malformed: recompute everything
        cells[cell.toString().toStdString()] = {d.toDouble(), m.toDouble(), s.toDouble()};
    }
    return cells;
}

void saveCache(const std::filesystem::path& file, const std::string& key, const CellMap& cells)
{
    QJsonArray list;
    for (const auto& [cell, c] : cells) {
        QJsonObject o;
        o[QStringLiteral("cell")] = QString::fromStdString(cell);
        o[QStringLiteral("delta_kl")] = c.deltaKl;
        o[QStringLiteral("max_kl")] = c.maxKl;
        o[QStringLiteral("same_top")] = c.sameTop;
        list.append(o);
    }
    QJsonObject root;
    root[QStringLiteral("version")] = QString::fromLatin1(kCacheVersion);
    root[QStringLiteral("key")] = QString::fromStdString(key);
    root[QStringLiteral("cells")] = list;
    try {
        std::error_code ec;
        std::filesystem::create_directories(file.parent_path(), ec);
        writeFileAtomically(file, QJsonDocument(root).toJson(QJsonDocument::Compact).toStdString());
    } catch (const Error&) {
        // a cache that cannot be written is only a slower next run
    }
}

// The original's distribution at the scored positions: log-probabilities (rounded to float the same way
// for both sides, as evaluate() does, so that identical logits give exactly 0) and the most likely token.
struct Baseline {
    uint32_t vocab = 0;
    std::vector<float> logProbs; // positions x vocab
    std::vector<int32_t> top;
};

// log-sum-exp of a column and its arg max (first on ties).
double logSumExp(const float* x, uint32_t vocab, int32_t& top)
{
    float mx = x[0];
    top = 0;
    for (uint32_t i = 1; i < vocab; ++i)
        if (x[i] > mx) {
            mx = x[i];
            top = static_cast<int32_t>(i);
        }
    double sum = 0;
    for (uint32_t i = 0; i < vocab; ++i)
        sum += std::exp(double(x[i]) - double(mx));
    return double(mx) + std::log(sum);
}

Baseline makeBaseline(const Eigen::MatrixXf& logits)
{
    Baseline b;
    b.vocab = static_cast<uint32_t>(logits.rows());
    const size_t n = size_t(logits.cols());
    b.logProbs.resize(n * b.vocab);
    b.top.resize(n);
    for (size_t p = 0; p < n; ++p) {
        const float* x = logits.col(Eigen::Index(p)).data();
        const double lse = logSumExp(x, b.vocab, b.top[p]);
        float* out = b.logProbs.data() + p * b.vocab;
        for (uint32_t v = 0; v < b.vocab; ++v)
            out[v] = static_cast<float>(double(x[v]) - lse);
    }
    return b;
}

struct KlStats {
    double mean = 0, max = 0, sameTop = 0;
};

// KL(P_original || P_quantized) per scored position, over the workers.
KlStats compare(const Baseline& b, const Eigen::MatrixXf& logits, unsigned threads)
{
    const size_t n = size_t(logits.cols());
    std::vector<double> kl(n);
    std::vector<char> same(n);
    std::atomic<size_t> next{0};
    const unsigned workers = std::max(1u, std::min<unsigned>(resolveThreads(threads), unsigned(n / 16 + 1)));
    ThreadPool::instance().runWorkers(workers, [&](unsigned) {
        for (;;) {
            const size_t p = next.fetch_add(1);
            if (p >= n)
                return;
            const float* x = logits.col(Eigen::Index(p)).data();
            int32_t top = 0;
            const double lse = logSumExp(x, b.vocab, top);
            const float* lb = b.logProbs.data() + p * b.vocab;
            double s = 0;
            for (uint32_t v = 0; v < b.vocab; ++v)
                s += std::exp(double(lb[v])) * (double(lb[v]) - double(static_cast<float>(double(x[v]) - lse)));
            kl[p] = std::max(0.0, s); // rounding can leave -1e-9 where the distributions agree
            same[p] = top == b.top[p] ? 1 : 0;
        }
    });
    KlStats st;
    size_t sameCount = 0;
    for (size_t p = 0; p < n; ++p) {
        st.mean += kl[p];
        st.max = std::max(st.max, kl[p]);
        sameCount += size_t(same[p]);
    }
    if (n > 0) {
        st.mean /= double(n);
        st.sameTop = double(sameCount) / double(n);
    }
    return st;
}

// The scored columns (positions ctx/2 .. ctx-2 of every chunk) of hidden states of whole chunks.
HiddenStates scoredColumns(const Eigen::MatrixXf& x, uint32_t ctx, uint32_t chunks)
{
    const uint32_t first = ctx / 2, scored = ctx - 1 - first;
    HiddenStates h;
    h.x.resize(x.rows(), Eigen::Index(size_t(chunks) * scored));
    for (uint32_t c = 0; c < chunks; ++c)
        h.x.middleCols(Eigen::Index(size_t(c) * scored), scored) =
            x.middleCols(Eigen::Index(size_t(c) * ctx + first), scored);
    h.lengths = {h.x.cols()};
    return h;
}

struct Unit {
    std::string label;
    std::vector<std::string> tensors;
    int start = 0; // first layer that sees the change: -1 the embedding lookup, layers = the head only
};

std::vector<Unit> makeUnits(const Transformer& tf, KlGranularity granularity)
{
    const Model& model = tf.model();
    const uint32_t layers = tf.config().layers;
    auto present = [&](const std::string& n) { return model.find(n) != nullptr; };
    std::vector<Unit> units;
    units.push_back({tf.embeddingTensor(), {tf.embeddingTensor()}, -1});
    for (uint32_t l = 0; l < layers; ++l) {
        const LayerTensors& L = tf.layerTensors(l);
        const std::vector<std::string> attn = {L.q, L.k, L.v, L.o}, ffn = {L.gate, L.up, L.down};
        if (granularity == KlGranularity::Group) {
            const std::string p = "blk." + std::to_string(l) + ".";
            units.push_back({p + "attn", attn, int(l)});
            units.push_back({p + "ffn", ffn, int(l)});
        } else {
            for (const auto* group : {&attn, &ffn})
                for (const auto& n : *group)
                    units.push_back({n, {n}, int(l)});
        }
    }
    if (tf.outputTensor() != tf.embeddingTensor()) // a tied head is the embedding's unit
        units.push_back({tf.outputTensor(), {tf.outputTensor()}, int(layers)});
    for (auto& u : units)
        std::erase_if(u.tensors, [&](const std::string& n) { return !present(n); });
    std::erase_if(units, [](const Unit& u) { return u.tensors.empty(); });
    return units;
}

std::string windowsHashOf(const TokenWindows& w, uint32_t firstChunk, uint32_t chunks)
{
    QCryptographicHash h(QCryptographicHash::Sha256);
    const std::string head = "ctx " + std::to_string(w.ctx) + " chunks " + std::to_string(chunks) + '\n';
    h.addData(QByteArrayView(head.data(), qsizetype(head.size())));
    for (uint32_t c = firstChunk; c < firstChunk + chunks; ++c) {
        const std::vector<int32_t> seq = w.chunk(c);
        h.addData(QByteArrayView(reinterpret_cast<const char*>(seq.data()),
                                 qsizetype(seq.size() * sizeof(int32_t))));
    }
    return h.result().toHex().left(32).toStdString();
}

} // namespace

std::vector<std::pair<std::string, std::vector<std::string>>> klUnits(const Model& model, KlGranularity granularity)
{
    // The shared_ptr does not own: the Transformer only names tensors here.
    const Transformer tf(std::shared_ptr<const Model>(&model, [](const Model*) {}), {});
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    for (auto& u : makeUnits(tf, granularity))
        out.emplace_back(std::move(u.label), std::move(u.tensors));
    return out;
}

KlSensitivityResult measureKlSensitivity(const KlSensitivityParams& params, const KlSensitivityCallback& onCell,
                                         JobControl* job)
{
    const auto start = std::chrono::steady_clock::now();
    if (!params.model)
        throw Error(ErrorCode::BadValue, "no model to measure");
    const Model& model = *params.model;
    const KlSensitivityOptions& opt = params.options;
    KlSensitivityResult result;
    result.granularity = opt.granularity;
    result.formats = opt.formats.empty() ? defaultSensitivityFormats() : opt.formats;
    std::vector<std::shared_ptr<const QuantFormat>> formats;
    for (auto& name : result.formats) {
        auto f = findFormat(name);
        if (!f)
            throw Error(ErrorCode::BadValue, "unknown quantization format '" + name + "'");
        name = f->name();
        formats.push_back(std::move(f));
    }

    ForwardOptions fwd;
    fwd.threads = opt.threads;
    Transformer tf(params.model, fwd); // refuses an architecture it cannot run before any work
    const TransformerConfig& config = tf.config();
    const uint32_t layers = config.layers;

    // The windows: whole chunks from firstChunk on, bounded by tokens and memory.
    const TokenWindows windows =
        tokenWindows(model, opt.ctx, 0, params.text, params.textFile, params.tokens, 1, job);
    const uint32_t ctx = windows.ctx;
    result.ctx = ctx;
    result.chunksInText = windows.chunks;
    if (opt.firstChunk >= windows.chunks)
        throw Error(ErrorCode::BadValue, "the text has " + std::to_string(windows.chunks) + " window(s) of " +
                                             std::to_string(ctx) + " tokens; none is left after skipping " +
                                             std::to_string(opt.firstChunk));
    uint32_t chunks = windows.chunks - opt.firstChunk;
    if (opt.maxChunks > 0)
        chunks = std::min(chunks, opt.maxChunks);
    const uint64_t byTokens = std::max<uint64_t>(1, opt.maxTokens / ctx);
    if (chunks > byTokens) {
        chunks = uint32_t(byTokens);
    }
    const uint32_t scored = ctx - 1 - ctx / 2;
    const uint64_t perChunk = (uint64_t(layers) + 1) * config.hidden * ctx * sizeof(float) +
                              uint64_t(scored) * config.vocab * sizeof(float);
    if (perChunk > opt.maxMemoryBytes)
        throw Error(ErrorCode::BadValue,
                    "one window of " + std::to_string(ctx) + " tokens needs " + std::to_string(perChunk >> 20) +
                        " MiB of hidden states and log-probabilities, above the bound of " +
                        std::to_string(opt.maxMemoryBytes >> 20) + " MiB: use a shorter context");
    if (uint64_t(chunks) * perChunk > opt.maxMemoryBytes) {
        const uint32_t fit = uint32_t(opt.maxMemoryBytes / perChunk);
        result.notes.push_back("measured on " + std::to_string(fit) + " window(s) instead of " +
                               std::to_string(chunks) + ": " + std::to_string(chunks) + " need " +
                               std::to_string((uint64_t(chunks) * perChunk) >> 20) + " MiB, the bound is " +
                               std::to_string(opt.maxMemoryBytes >> 20) + " MiB");
        chunks = fit;
    }
    result.firstChunk = opt.firstChunk;
    result.chunks = chunks;
    result.tokens = size_t(chunks) * ctx;
    result.positions = size_t(chunks) * scored;
    result.memoryBytes = uint64_t(chunks) * perChunk;
    result.windowsHash = windowsHashOf(windows, opt.firstChunk, chunks);

    // Cells: what is cached or cannot be stored is known now.
    const std::vector<Unit> units = makeUnits(tf, opt.granularity);
    std::filesystem::path cacheFile;
    std::string key;
    CellMap cached, fresh;
    if (opt.useCache) {
        cacheFile = klSensitivityCacheFile(model, result.windowsHash, opt.cacheDir);
        key = cacheFile.empty() ? std::string() : cacheKey(model, result.windowsHash);
        if (!key.empty())
            cached = loadCache(cacheFile, key);
    }
    std::vector<size_t> toMeasure;
    for (const Unit& u : units)
        for (const auto& f : formats) {
            KlSensitivityCell c;
            c.unit = u.label;
            c.tensors = u.tensors;
            c.format = f->name();
            for (const auto& n : u.tensors) {
                const TensorInfo& t = *model.find(n);
                c.elements += t.elements();
                const auto bytes = f->supports(t.rows(), t.columns()) ? f->storedBytes(t.rows(), t.columns())
                                                                      : std::nullopt;
                if (!f->available())
                    c.error = f->name() + " codec is not available in this build";
                else if (!bytes)
                    c.error = f->name() + " does not support " + n + " (" + std::to_string(t.rows()) + " x " +
                              std::to_string(t.columns()) + ")";
                if (!c.error.empty())
                    break;
                c.bytes += *bytes;
            }
            if (!c.ok())
                c.bytes = 0;
            else
                c.bitsPerWeight = 8.0 * double(c.bytes) / double(std::max<uint64_t>(1, c.elements));
            if (c.ok())
                if (auto it = cached.find(cellKey(c.unit, c.tensors, c.format)); it != cached.end()) {
                    c.deltaKl = it->second.deltaKl;
                    c.maxKl = it->second.maxKl;
                    c.sameTop = it->second.sameTop;
                    c.fromCache = true;
                    ++result.cachedCells;
                }
            if (c.ok() && !c.fromCache)
                toMeasure.push_back(result.cells.size());
            else if (onCell)
                onCell(c);
            result.cells.push_back(std::move(c));
        }

    auto save = [&] {
        if (key.empty() || fresh.empty())
            return;
        CellMap merged = cached;
        for (const auto& [k, v] : fresh)
            merged[k] = v;
        saveCache(cacheFile, key, merged);
    };

    if (!toMeasure.empty()) {
        tf.setLinearHook([job](const LinearInput&) { checkCancel(job); });
        const double total = double(toMeasure.size()) + 1.0;
        reportProgress(job, 0, "ΔKL: the original model over " + std::to_string(chunks) + " window(s)");
        std::vector<std::vector<int32_t>> seqs;
        for (uint32_t c = 0; c < chunks; ++c)
            seqs.push_back(windows.chunk(opt.firstChunk + c));
        std::vector<std::span<const int32_t>> spans(seqs.begin(), seqs.end());
        // Hidden states at every layer input, then after the last layer.
        std::vector<Eigen::MatrixXf> hidden;
        hidden.reserve(layers + 1);
        HiddenStates h = tf.embed(spans);
        const std::vector<Eigen::Index> lengths = h.lengths;
        hidden.push_back(h.x);
        for (uint32_t l = 0; l < layers; ++l) {
            tf.runLayers(h, l, l + 1);
            hidden.push_back(h.x);
        }
        const Baseline base = makeBaseline(tf.logits(scoredColumns(hidden.back(), ctx, chunks)));
        h = {};

        size_t done = 0;
        std::map<std::string, std::shared_ptr<const std::vector<float>>> original; // of the current unit
        std::string originalOf;
        try {
            for (size_t idx : toMeasure) {
                KlSensitivityCell& c = result.cells[idx];
                checkCancel(job);
                reportProgress(job, (double(done) + 1.0) / total,
                               "ΔKL " + std::to_string(done + 1) + " of " + std::to_string(toMeasure.size()) +
                                   ": " + c.unit + " in " + c.format);
                const Unit& u = *std::find_if(units.begin(), units.end(),
                                              [&](const Unit& x) { return x.label == c.unit; });
                if (originalOf != u.label) {
                    original.clear();
                    for (const auto& n : u.tensors)
                        original[n] = tf.weights(n);
                    originalOf = u.label;
                }
                const auto format = findFormat(c.format);
                for (const auto& n : u.tensors) {
                    const TensorInfo& t = *model.find(n);
                    auto rt = std::make_shared<std::vector<float>>(original[n]->size());
                    format->roundTrip(original[n]->data(), t.rows(), t.columns(), rt->data());
                    tf.setWeightOverride(n, std::move(rt));
                }
                HiddenStates run;
                if (u.start < 0) {
                    run = tf.embed(spans);
                    tf.runLayers(run, 0, layers);
                } else {
                    run.x = hidden[size_t(u.start)];
                    run.lengths = lengths;
                    tf.runLayers(run, uint32_t(u.start), layers);
                }
                const KlStats st = compare(base, tf.logits(scoredColumns(run.x, ctx, chunks)), opt.threads);
                for (const auto& n : u.tensors)
                    tf.setWeightOverride(n, nullptr);
                c.deltaKl = st.mean;
                c.maxKl = st.max;
                c.sameTop = st.sameTop;
                fresh[cellKey(c.unit, c.tensors, c.format)] = {st.mean, st.max, st.sameTop};
                if (onCell)
                    onCell(c);
                ++done;
            }
        } catch (...) {
            save(); // what was measured is kept, also when cancelled
            throw;
        }
        save();
    }
    reportProgress(job, 1.0, "done");
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

ErrorTable errorTableFromKl(const KlSensitivityResult& result)
{
    if (result.granularity != KlGranularity::Tensor)
        throw Error(ErrorCode::BadValue, "ΔKL measured per layer group cannot drive a per-tensor fit: measure "
                                         "with the tensor granularity");
    ErrorTable t;
    for (const auto& c : result.cells)
        if (c.ok() && c.tensors.size() == 1 && std::isfinite(c.deltaKl))
            t[c.tensors.front()][c.format] = c.deltaKl;
    return t;
}

QJsonObject klSensitivityJson(const KlSensitivityResult& result, const Model& model)
{
    QJsonObject root;
    root[QStringLiteral("measure")] = QStringLiteral("kl");
    root[QStringLiteral("granularity")] = QString::fromLatin1(klGranularityName(result.granularity));
    QJsonArray formats;
    for (const auto& f : result.formats)
        formats.append(QString::fromStdString(f));
    root[QStringLiteral("formats")] = formats;
    root[QStringLiteral("ctx")] = qint64(result.ctx);
    root[QStringLiteral("first_chunk")] = qint64(result.firstChunk);
    root[QStringLiteral("chunks")] = qint64(result.chunks);
    root[QStringLiteral("chunks_in_text")] = qint64(result.chunksInText);
    root[QStringLiteral("tokens")] = qint64(result.tokens);
    root[QStringLiteral("scored")] = qint64(result.positions);
    root[QStringLiteral("windows_hash")] = QString::fromStdString(result.windowsHash);
    root[QStringLiteral("memory_bytes")] = qint64(result.memoryBytes);
    root[QStringLiteral("cached_cells")] = qint64(result.cachedCells);
    root[QStringLiteral("seconds")] = result.seconds;
    QJsonArray notes;
    for (const auto& n : result.notes)
        notes.append(QString::fromStdString(n));
    root[QStringLiteral("notes")] = notes;
    QJsonArray list;
    for (const auto& c : result.cells) {
        QJsonObject o;
        if (c.tensors.size() == 1 && c.unit == c.tensors.front()) {
            const TensorInfo* t = model.find(c.unit);
            o[QStringLiteral("tensor")] = QString::fromStdString(c.unit);
            o[QStringLiteral("rows")] = qint64(t ? t->rows() : 0);
            o[QStringLiteral("cols")] = qint64(t ? t->columns() : 0);
        } else {
            o[QStringLiteral("unit")] = QString::fromStdString(c.unit);
            QJsonArray members;
            for (const auto& n : c.tensors)
                members.append(QString::fromStdString(n));
            o[QStringLiteral("tensors")] = members;
        }
        o[QStringLiteral("format")] = QString::fromStdString(c.format);
        o[QStringLiteral("elements")] = qint64(c.elements);
        o[QStringLiteral("cached")] = c.fromCache;
        if (!c.ok()) {
            o[QStringLiteral("error")] = QString::fromStdString(c.error);
        } else {
            o[QStringLiteral("bytes")] = qint64(c.bytes);
            o[QStringLiteral("bits_per_weight")] = c.bitsPerWeight;
            o[QStringLiteral("delta_kl")] = c.deltaKl;
            o[QStringLiteral("max_kl")] = c.maxKl;
            o[QStringLiteral("same_top")] = c.sameTop;
        }
        list.append(o);
    }
    root[QStringLiteral("results")] = list;
    return root;
}

double klScoreDb(double deltaKl)
{
    return deltaKl > 0 ? -10.0 * std::log10(deltaKl) : std::numeric_limits<double>::infinity();
}

std::optional<SensitivityResult> sensitivityCellFromKl(const KlSensitivityCell& c, const Model& model)
{
    if (c.tensors.size() != 1 || c.tensors.front() != c.unit)
        return std::nullopt; // a layer group: no per-tensor cell
    const TensorInfo* t = model.find(c.unit);
    if (!t)
        return std::nullopt;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    SensitivityResult r;
    r.tensor = c.unit;
    r.format = c.format;
    r.rows = t->rows();
    r.cols = t->columns();
    r.error = c.error;
    r.fromCache = c.fromCache;
    if (c.ok()) {
        r.bytes = c.bytes;
        r.bitsPerWeight = c.bitsPerWeight;
        r.metrics.count = c.elements;
        r.metrics.mse = c.deltaKl / double(std::max<uint64_t>(1, c.elements));
        r.metrics.sqnrDb = klScoreDb(c.deltaKl);
        r.metrics.relMse = r.metrics.maxAbsErr = r.metrics.cosine = r.metrics.meanSquare = nan;
        r.deltaKl = c.deltaKl;
    }
    return r;
}

std::vector<SensitivityResult> sensitivityCellsFromKl(const KlSensitivityResult& result, const Model& model)
{
    if (result.granularity != KlGranularity::Tensor)
        throw Error(ErrorCode::BadValue, "ΔKL measured per layer group has no per-tensor cells");
    std::vector<SensitivityResult> out;
    for (const auto& c : result.cells)
        if (auto r = sensitivityCellFromKl(c, model))
            out.push_back(std::move(*r));
    return out;
}

KlSensitivityJob::KlSensitivityJob(KlSensitivityParams params)
    : BasicJob("Measuring ΔKL sensitivity", std::move(params))
{
}

void KlSensitivityJob::execute(JobControl& control)
{
    m_result = measureKlSensitivity(
        m_params, [this](const KlSensitivityCell& c) { m_finished.push(c); }, &control);
}

} // namespace qs
