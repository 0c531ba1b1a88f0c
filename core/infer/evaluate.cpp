#include "core/infer/evaluate.h"

#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/text/tokenizer.h"
#include "core/util/atomicfile.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/util/strings.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

namespace qs {

namespace {

constexpr uint32_t kDefaultCtx = 512;
constexpr uint32_t kMinTopK = 64;
constexpr uint64_t kMaxTextBytes = uint64_t{1} << 30;

struct LogSoftmax {
    double lse = 0; // log-sum-exp of the column
    int32_t top = 0;
};

LogSoftmax logSumExp(const float* x, uint32_t vocab)
{
    LogSoftmax r;
    float mx = x[0];
    for (uint32_t i = 1; i < vocab; ++i)
        if (x[i] > mx) {
            mx = x[i];
            r.top = static_cast<int32_t>(i);
        }
    double sum = 0;
    for (uint32_t i = 0; i < vocab; ++i)
        sum += std::exp(double(x[i]) - double(mx));
    r.lse = double(mx) + std::log(sum);
    return r;
}

// Log-probabilities are rounded to float the same way for the original and the quantized model, so that
// identical logits give a KL divergence of exactly 0.
inline float logProb(float logit, double lse)
{
    return static_cast<float>(double(logit) - lse);
}

bool sameInput(const EvalBaseline& b, const Model* model, const std::vector<int32_t>& tokens, uint32_t ctx,
               uint32_t chunks)
{
    return b.model == model && b.ctx == ctx && b.chunks == chunks && b.tokens == tokens;
}

// Counts linear layers to report progress within a pass and to honour a cancel before each of them.
class PassProgress {
public:
    PassProgress(JobControl* job, double totalPasses, double linearsPerPass)
        : m_job(job), m_total(totalPasses), m_perPass(linearsPerPass)
    {
    }
    void startPass(double index, std::string stage)
    {
        m_pass = index;
        m_count = 0;
        m_stage = std::move(stage);
        reportProgress(m_job, m_pass / m_total, m_stage);
    }
    void onLinear()
    {
        checkCancel(m_job);
        ++m_count;
        const double within = std::min(1.0, double(m_count) / m_perPass);
        reportProgress(m_job, (m_pass + within) / m_total, m_stage);
    }

private:
    JobControl* m_job;
    double m_total, m_perPass;
    double m_pass = 0;
    size_t m_count = 0;
    std::string m_stage;
};

std::vector<int32_t> encodeText(const std::optional<Tokenizer>& tokenizer, const std::string& text,
                                bool addBos)
{
    if (auto bad = firstInvalidUtf8(text))
        throw Error(ErrorCode::BadValue,
                    "the evaluation text is not valid UTF-8 (first invalid byte at offset " +
                        std::to_string(*bad) + ")");
    if (!tokenizer)
        throw Error(ErrorCode::BadValue,
                    "the model has no vocabulary to tokenize the text (give token ids instead)");
    // As llama-perplexity and llama-imatrix tokenize: special-token text in the file stays plain text.
    return tokenizer->encode(text, addBos, /*parseSpecial=*/false);
}

bool addsBos(const std::optional<Tokenizer>& tokenizer)
{
    return tokenizer && tokenizer->addBosByDefault() && tokenizer->bos().has_value();
}

// A text cut into llama-perplexity's chunks: ctx tokens each, non-overlapping, BOS in front when the
// vocabulary adds it.
struct TextChunks {
    std::vector<int32_t> tokens;
    std::optional<int32_t> bos;
    uint32_t ctx = 0;
    uint32_t chunks = 0;
    std::vector<int32_t> chunk(uint32_t i) const
    {
        std::vector<int32_t> seq(tokens.begin() + ptrdiff_t(size_t(i) * ctx),
                                 tokens.begin() + ptrdiff_t(size_t(i + 1) * ctx));
        if (bos)
            seq[0] = *bos;
        return seq;
    }
};

TextChunks prepareChunks(const Model& model, const TransformerConfig& config, uint32_t ctx,
                         uint32_t maxChunks, const std::string& text, const std::filesystem::path& textFile,
                         const std::vector<int32_t>& givenTokens, size_t minChunks, JobControl* job)
{
    if (ctx == 0)
        ctx = config.contextLength > 0 ? uint32_t(std::min<uint64_t>(kDefaultCtx, config.contextLength))
                                       : kDefaultCtx;
    if (config.contextLength > 0 && ctx > config.contextLength)
        throw Error(ErrorCode::BadValue, "a context of " + std::to_string(ctx) +
                                             " tokens is longer than the model's maximum of " +
                                             std::to_string(config.contextLength));
    if (ctx < 4)
        throw Error(ErrorCode::BadValue, "the context must be at least 4 tokens, not " + std::to_string(ctx));
    TextChunks c;
    c.ctx = ctx;
    const std::optional<Tokenizer> tokenizer = Tokenizer::fromModel(model);
    c.bos = addsBos(tokenizer) ? tokenizer->bos() : std::nullopt;
    if (!givenTokens.empty()) {
        c.tokens = givenTokens;
    } else {
        reportProgress(job, 0, "tokenizing");
        const bool fromFile = text.empty() && !textFile.empty();
        c.tokens = encodeText(tokenizer, fromFile ? readRegularFile(textFile, kMaxTextBytes, "text") : text,
                              c.bos.has_value());
    }
    const size_t needed = minChunks * size_t(ctx);
    if (c.tokens.size() < needed)
        throw Error(ErrorCode::BadValue, "the text has " + std::to_string(c.tokens.size()) +
                                             " tokens; a context of " + std::to_string(ctx) +
                                             " needs at least " + std::to_string(needed) +
                                             (minChunks == 1 ? " (one chunk)" : " (two chunks)"));
    c.chunks = static_cast<uint32_t>(std::min<size_t>(c.tokens.size() / ctx, UINT32_MAX));
    if (maxChunks > 0)
        c.chunks = std::min(c.chunks, maxChunks);
    return c;
}

} // namespace

std::vector<int32_t> TokenWindows::chunk(uint32_t i) const
{
    std::vector<int32_t> seq(tokens.begin() + ptrdiff_t(size_t(i) * ctx),
                             tokens.begin() + ptrdiff_t(size_t(i + 1) * ctx));
    if (bos)
        seq[0] = *bos;
    return seq;
}

TokenWindows tokenWindows(const Model& model, uint32_t ctx, uint32_t maxChunks, const std::string& text,
                          const std::filesystem::path& textFile, const std::vector<int32_t>& tokens,
                          size_t minChunks, JobControl* job)
{
    TextChunks c = prepareChunks(model, transformerConfig(model), ctx, maxChunks, text, textFile, tokens,
                                 std::max<size_t>(1, minChunks), job);
    TokenWindows w;
    w.tokens = std::move(c.tokens);
    w.bos = c.bos;
    w.ctx = c.ctx;
    w.chunks = c.chunks;
    return w;
}

std::vector<int32_t> evaluationTokens(const Model& model, const std::string& text, bool* addBos)
{
    const auto tokenizer = Tokenizer::fromModel(model);
    if (addBos)
        *addBos = addsBos(tokenizer);
    return encodeText(tokenizer, text, addsBos(tokenizer));
}

double sortedPercentile(const std::vector<float>& values, double fraction)
{
    if (values.empty())
        return 0;
    if (fraction <= 0)
        return values.front();
    if (fraction >= 1)
        return values.back();
    double p = fraction * double(values.size() - 1);
    const size_t ip = static_cast<size_t>(p);
    p -= double(ip);
    return (1 - p) * values[ip] + p * values[std::min(ip + 1, values.size() - 1)];
}

double sortedMedian(const std::vector<float>& v)
{
    if (v.empty())
        return 0;
    const size_t n = v.size();
    return n % 2 == 0 ? 0.5 * (double(v[n / 2]) + double(v[n / 2 - 1])) : double(v[n / 2]);
}

EvalResult evaluate(const EvalParams& params, JobControl* job)
{
    const auto start = std::chrono::steady_clock::now();
    if (!params.model)
        throw Error(ErrorCode::BadValue, "no model to evaluate");
    const Model& model = *params.model;

    // The architecture and configuration first: an unsupported model is refused before any work.
    ForwardOptions options;
    options.threads = params.threads;
    options.llamaCppActivations = params.llamaCppActivations;
    Transformer original(params.model, options);
    const TransformerConfig& config = original.config();
    const uint32_t vocab = config.vocab;

    EvalResult result;
    const TextChunks text = prepareChunks(model, config, params.ctx, params.maxChunks, params.text,
                                          params.textFile, params.tokens, 2, job);
    const std::vector<int32_t>& tokens = text.tokens;
    const uint32_t ctx = text.ctx, chunks = text.chunks;
    result.ctx = ctx;
    result.addBos = text.bos.has_value();
    result.tokens = tokens.size();
    result.chunks = chunks;
    const uint32_t first = ctx / 2;
    const uint32_t scored = ctx - 1 - first; // per chunk
    const size_t positions = size_t(chunks) * scored;
    result.positions = positions;

    std::shared_ptr<const EvalBaseline> baseline = params.baseline;
    const bool reuse =
        baseline && sameInput(*baseline, &model, tokens, ctx, chunks) && baseline->vocab == vocab &&
        baseline->llamaCppActivations == params.llamaCppActivations;
    result.baselineReused = reuse;
    const bool withPlan = params.plan.has_value() || params.quantizedModel;
    const double passes = double(reuse ? 0 : chunks) + double(withPlan ? chunks : 0);
    PassProgress progress(job, std::max(1.0, passes), double(config.layers) * 7.0 + 1.0);
    double pass = 0;

    auto runChunk = [&](Transformer& t, uint32_t i) {
        KvCache cache;
        const std::vector<int32_t> seq = text.chunk(i);
        return t.forward(seq, cache);
    };

    if (!reuse) {
        auto b = std::make_shared<EvalBaseline>();
        b->model = &model;
        b->tokens = tokens;
        b->ctx = ctx;
        b->chunks = chunks;
        b->vocab = vocab;
        b->llamaCppActivations = params.llamaCppActivations;
        const double exactBytes = double(positions) * double(vocab) * sizeof(float);
        if (exactBytes <= double(params.baselineBytes)) {
            b->topK = vocab;
        } else {
            const double k = double(params.baselineBytes) / (double(positions) * 8.0);
            b->topK = static_cast<uint32_t>(std::clamp(k, double(kMinTopK), double(vocab)));
        }
        b->nll.reserve(positions);
        b->top.reserve(positions);
        b->logProbs.reserve(positions * b->topK);
        if (!b->exact())
            b->ids.reserve(positions * b->topK);
        original.setLinearHook([&](const LinearInput&) { progress.onLinear(); });
        std::vector<int32_t> order(vocab);
        for (uint32_t i = 0; i < chunks; ++i) {
            checkCancel(job);
            progress.startPass(pass++, "original model, chunk " + std::to_string(i + 1) + " of " +
                                           std::to_string(chunks));
            const Eigen::MatrixXf logits = runChunk(original, i);
            for (uint32_t j = first; j + 1 < ctx; ++j) {
                const float* x = logits.col(j).data();
                const LogSoftmax ls = logSumExp(x, vocab);
                const int32_t next = tokens[size_t(i) * ctx + j + 1];
                b->nll.push_back(ls.lse - double(x[next]));
                b->top.push_back(ls.top);
                if (b->exact()) {
                    for (uint32_t v = 0; v < vocab; ++v)
                        b->logProbs.push_back(logProb(x[v], ls.lse));
                } else {
                    std::iota(order.begin(), order.end(), 0);
                    // The set of the k largest is enough (the KL sum does not need them in order): O(vocab).
                    std::nth_element(
                        order.begin(), order.begin() + (b->topK - 1), order.end(),
                        [x](int32_t a, int32_t c) { return x[a] > x[c] || (x[a] == x[c] && a < c); });
                    for (uint32_t k = 0; k < b->topK; ++k) {
                        b->ids.push_back(order[k]);
                        b->logProbs.push_back(logProb(x[order[k]], ls.lse));
                    }
                }
            }
        }
        original.setLinearHook({});
        baseline = std::move(b);
    }
    result.baseline = baseline;
    result.baselineTopK = baseline->topK;
    result.kldExact = baseline->exact();

    result.perChunk.resize(chunks);
    double nllSum = 0;
    for (uint32_t i = 0; i < chunks; ++i) {
        double s = 0;
        for (uint32_t j = 0; j < scored; ++j)
            s += baseline->nll[size_t(i) * scored + j];
        result.perChunk[i].perplexity = std::exp(s / scored);
        nllSum += s;
    }
    result.perplexity = std::exp(nllSum / double(positions));

    if (withPlan) {
        ForwardOptions qOptions = options;
        if (!params.quantizedModel)
            qOptions.plan = &*params.plan;
        Transformer quantized(params.quantizedModel ? params.quantizedModel : params.model, qOptions);
        if (quantized.config().vocab != vocab)
            throw Error(ErrorCode::BadValue, "the quantized model has a vocabulary of " +
                                                 std::to_string(quantized.config().vocab) + ", the original " +
                                                 std::to_string(vocab));
        quantized.setLinearHook([&](const LinearInput&) { progress.onLinear(); });
        result.quantized = true;
        result.kld.reserve(positions);
        double qNllSum = 0, kldSum = 0;
        size_t sameTop = 0;
        const uint32_t k = baseline->topK;
        std::vector<float> lq(vocab);
        for (uint32_t i = 0; i < chunks; ++i) {
            checkCancel(job);
            progress.startPass(pass++, "quantized model, chunk " + std::to_string(i + 1) + " of " +
                                           std::to_string(chunks));
            const Eigen::MatrixXf logits = runChunk(quantized, i);
            EvalChunk& c = result.perChunk[i];
            double chunkNll = 0, chunkKld = 0;
            size_t chunkSame = 0;
            for (uint32_t j = first; j + 1 < ctx; ++j) {
                const size_t p = size_t(i) * scored + (j - first);
                const float* x = logits.col(j).data();
                const LogSoftmax ls = logSumExp(x, vocab);
                const int32_t next = tokens[size_t(i) * ctx + j + 1];
                chunkNll += ls.lse - double(x[next]);
                const float* lb = baseline->logProbs.data() + p * k;
                double kl = 0;
                if (baseline->exact()) {
                    for (uint32_t v = 0; v < vocab; ++v)
                        kl += std::exp(double(lb[v])) * (double(lb[v]) - double(logProb(x[v], ls.lse)));
                } else {
                    const int32_t* id = baseline->ids.data() + p * k;
                    double pk = 0, qk = 0;
                    for (uint32_t e = 0; e < k; ++e) {
                        const double pb = std::exp(double(lb[e]));
                        const double lqe = double(logProb(x[id[e]], ls.lse));
                        kl += pb * (double(lb[e]) - lqe);
                        pk += pb;
                        qk += std::exp(lqe);
                    }
                    const double pTail = 1.0 - pk, qTail = std::max(1.0 - qk, 1e-30);
                    if (pTail > 1e-12)
                        kl += pTail * (std::log(pTail) - std::log(qTail));
                }
                kl = std::max(0.0, kl); // rounding can leave -1e-9 where the distributions agree
                result.kld.push_back(static_cast<float>(kl));
                chunkKld += kl;
                c.kldMax = std::max(c.kldMax, kl);
                if (ls.top == baseline->top[p])
                    ++chunkSame;
            }
            c.perplexityQuantized = std::exp(chunkNll / scored);
            c.kldMean = chunkKld / scored;
            c.sameTop = double(chunkSame) / scored;
            qNllSum += chunkNll;
            kldSum += chunkKld;
            sameTop += chunkSame;
        }
        result.perplexityQuantized = std::exp(qNllSum / double(positions));
        result.kldMean = kldSum / double(positions);
        result.sameTop = double(sameTop) / double(positions);
        std::vector<float> sorted = result.kld;
        std::sort(sorted.begin(), sorted.end());
        result.kldMedian = sortedMedian(sorted);
        result.kldP99 = sortedPercentile(sorted, 0.99);
        result.kldMax = sorted.back();
    }
    reportProgress(job, 1.0, "done");
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

EvalJob::EvalJob(EvalParams params) : BasicJob("Evaluating", std::move(params)) {}

void EvalJob::execute(JobControl& control)
{
    m_result = evaluate(m_params, &control);
}

namespace {

// The identity of a linear layer's input within its layer: q, k and v read one input, gate and up another;
// every other weight its own.
std::string inputKey(const Transformer& transformer, uint32_t layer, const std::string& tensor)
{
    const LayerTensors& lt = transformer.layerTensors(layer);
    const std::string prefix = "L" + std::to_string(layer) + "/";
    if (tensor == lt.q || tensor == lt.k || tensor == lt.v)
        return prefix + "attn_in";
    if (tensor == lt.gate || tensor == lt.up)
        return prefix + "ffn_in";
    return prefix + tensor;
}

} // namespace

CalibrateResult calibrate(const CalibrateParams& params, JobControl* job)
{
    if (!params.model)
        throw Error(ErrorCode::BadValue, "no model to calibrate");
    ForwardOptions options;
    options.threads = params.threads;
    Transformer transformer(params.model, options);
    const TransformerConfig& config = transformer.config();
    const TextChunks text = prepareChunks(*params.model, config, params.ctx, params.maxChunks, params.text,
                                          params.textFile, params.tokens, 1, job);
    ActivationAccumulator acc(params.hessians, params.threads);
    std::unique_ptr<ActivationStatsWriter> writer;
    if (!params.statsOut.empty())
        writer = std::make_unique<ActivationStatsWriter>(
            params.statsOut, params.model->path().filename().string(),
            params.dataset.empty() ? params.textFile.filename().string() : params.dataset);
    CalibrateResult result;
    result.ctx = text.ctx;
    result.chunks = text.chunks;
    result.tokens = text.tokens.size();
    auto collect = [&](std::string_view prefix) {
        for (InputActivations& in : acc.take(prefix)) {
            if (writer) {
                writer->write(in);
                in.xtx = {}; // on disk now: memory stays at one layer's Hessians
            }
            result.activations.inputs.push_back(std::move(in));
        }
    };

    auto record = [&](const LinearInput& in) {
        if (in.tensor == transformer.outputTensor())
            return; // the output head, as llama-imatrix leaves it out
        acc.add(inputKey(transformer, in.layer, in.tensor), in.tensor, in.x.data(), in.x.rows(), in.x.cols());
    };
    if (!params.hessians) {
        PassProgress progress(job, text.chunks, double(config.layers) * 7.0 + 1.0);
        transformer.setLinearHook([&](const LinearInput& in) {
            progress.onLinear();
            record(in);
        });
        for (uint32_t i = 0; i < text.chunks; ++i) {
            checkCancel(job);
            progress.startPass(i, "chunk " + std::to_string(i + 1) + " of " + std::to_string(text.chunks));
            acc.beginPass();
            KvCache cache;
            const std::vector<int32_t> seq = text.chunk(i);
            transformer.forward(seq, cache, /*lastOnly=*/true);
        }
        collect({});
    } else {
        // Layer by layer over every chunk's hidden states: one layer's Hessians in memory at a time.
        std::vector<HiddenStates> states;
        states.reserve(text.chunks);
        for (uint32_t i = 0; i < text.chunks; ++i) {
            checkCancel(job);
            const std::vector<int32_t> seq = text.chunk(i);
            states.push_back(transformer.embed({std::span<const int32_t>(seq)}));
        }
        const double passes = double(config.layers) * text.chunks;
        PassProgress progress(job, std::max(1.0, passes), 7.0);
        transformer.setLinearHook([&](const LinearInput& in) {
            progress.onLinear();
            record(in);
        });
        for (uint32_t l = 0; l < config.layers; ++l) {
            for (uint32_t i = 0; i < text.chunks; ++i) {
                progress.startPass(double(l) * text.chunks + i,
                                   "layer " + std::to_string(l + 1) + " of " + std::to_string(config.layers) +
                                       ", chunk " + std::to_string(i + 1));
                acc.beginPass();
                transformer.runLayers(states[i], l, l + 1);
            }
            collect("L" + std::to_string(l) + "/");
        }
    }
    transformer.setLinearHook({});
    reportProgress(job, 1.0, "done");
    result.activations.ctx = text.ctx;
    result.activations.chunks = text.chunks;
    result.activations.tokens = uint64_t(text.chunks) * text.ctx;
    result.entries = result.activations.importanceEntries();
    if (writer)
        writer->commit(result.activations.ctx, result.activations.chunks, result.activations.tokens);
    return result;
}

void writeImportanceLegacy(const CalibrateResult& result, const std::filesystem::path& path,
                           const std::string& dataset)
{
    std::string out;
    auto putInt = [&out](int32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    auto putString = [&](const std::string& str) {
        putInt(static_cast<int32_t>(str.size()));
        out += str;
    };
    putInt(static_cast<int32_t>(result.entries.size()));
    const int32_t ncall = static_cast<int32_t>(std::max<uint32_t>(1, result.chunks));
    for (const ImportanceEntry& e : result.entries) {
        putString(e.name);
        putInt(ncall);
        putInt(static_cast<int32_t>(e.values.size()));
        for (float v : e.values) {
            const float scaled = v * float(ncall);
            out.append(reinterpret_cast<const char*>(&scaled), sizeof scaled);
        }
    }
    putInt(static_cast<int32_t>(result.chunks));
    putString(dataset);
    writeFileAtomically(path, out);
}

namespace {

// Little-endian GGUF v3 building blocks for the imatrix file.
class GgufBytes {
public:
    template <class T> void put(T v) { m_out.append(reinterpret_cast<const char*>(&v), sizeof v); }
    void putString(const std::string& s)
    {
        put<uint64_t>(s.size());
        m_out += s;
    }
    void padTo(size_t alignment)
    {
        m_out.resize((m_out.size() + alignment - 1) / alignment * alignment, '\0');
    }
    std::string& bytes() { return m_out; }

private:
    std::string m_out;
};

constexpr uint32_t kGgufUint32 = 4, kGgufString = 8, kGgufArray = 9, kGgufF32 = 0;
constexpr size_t kGgufAlignment = 32;

} // namespace

void writeImportanceGguf(const CalibrateResult& result, const std::filesystem::path& path,
                         const std::string& dataset)
{
    GgufBytes g;
    g.bytes() = "GGUF";
    g.put<uint32_t>(3);
    g.put<uint64_t>(2 * result.entries.size());
    g.put<uint64_t>(4);
    g.putString("general.type");
    g.put(kGgufString);
    g.putString("imatrix");
    g.putString("imatrix.datasets");
    g.put(kGgufArray);
    g.put(kGgufString);
    g.put<uint64_t>(1);
    g.putString(dataset);
    g.putString("imatrix.chunk_count");
    g.put(kGgufUint32);
    g.put<uint32_t>(result.chunks);
    g.putString("imatrix.chunk_size");
    g.put(kGgufUint32);
    g.put<uint32_t>(result.ctx);
    // Tensor infos, then the data: sums and counts of each entry, each at an aligned offset.
    uint64_t offset = 0;
    auto align = [](uint64_t v) { return (v + kGgufAlignment - 1) / kGgufAlignment * kGgufAlignment; };
    for (const ImportanceEntry& e : result.entries) {
        g.putString(e.name + ".in_sum2");
        g.put<uint32_t>(2);
        g.put<uint64_t>(e.columns);
        g.put<uint64_t>(1);
        g.put(kGgufF32);
        g.put<uint64_t>(offset);
        offset = align(offset + 4 * e.columns);
        g.putString(e.name + ".counts");
        g.put<uint32_t>(2); // ne = [1, matrices], as llama-imatrix writes it
        g.put<uint64_t>(1);
        g.put<uint64_t>(1);
        g.put(kGgufF32);
        g.put<uint64_t>(offset);
        offset = align(offset + 4);
    }
    g.padTo(kGgufAlignment);
    for (const ImportanceEntry& e : result.entries) {
        const float count = e.counts.empty() ? 0.0f : e.counts.front();
        for (float v : e.values)
            g.put<float>(v * count);
        g.padTo(kGgufAlignment);
        g.put<float>(count);
        g.padTo(kGgufAlignment);
    }
    writeFileAtomically(path, g.bytes());
}

std::vector<std::vector<int32_t>> calibrationChunks(const Model& model, uint32_t ctx, uint32_t maxChunks,
                                                    const std::string& text,
                                                    const std::filesystem::path& textFile,
                                                    const std::vector<int32_t>& tokens, uint32_t* ctxOut,
                                                    JobControl* job)
{
    const TextChunks c =
        prepareChunks(model, transformerConfig(model), ctx, maxChunks, text, textFile, tokens, 1, job);
    if (ctxOut)
        *ctxOut = c.ctx;
    std::vector<std::vector<int32_t>> out;
    for (uint32_t i = 0; i < c.chunks; ++i)
        out.push_back(c.chunk(i));
    return out;
}

CalibrateJob::CalibrateJob(CalibrateParams params) : BasicJob("Calibrating", std::move(params)) {}

ImportanceMatrix importanceMatrixOf(const CalibrateResult& result, const std::string& dataset)
{
    return ImportanceMatrix::fromEntries(result.entries, {dataset}, result.chunks);
}

void CalibrateJob::execute(JobControl& control)
{
    m_result = calibrate(m_params, &control);
    if (m_params.imatrixOut.empty())
        return;
    const std::string dataset =
        m_params.dataset.empty() ? m_params.textFile.filename().string() : m_params.dataset;
    control.report(1.0, "writing " + m_params.imatrixOut.filename().string());
    if (lower(m_params.imatrixOut.extension().string()) == ".dat")
        writeImportanceLegacy(m_result, m_params.imatrixOut, dataset);
    else
        writeImportanceGguf(m_result, m_params.imatrixOut, dataset);
}

} // namespace qs
