#include "core/infer/forward.h"

#include "core/io/jsonscan.h"
#include "core/model/model.h"
#include "core/plan/plan.h"
#include "core/quant/format.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/util/threadpool.h"

#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numbers>

namespace qs {

namespace {

// Eigen splits a matrix product's inner dimension into panels sized from the L1 data cache it reads off
// the CPU (32 KiB: panels of 504 floats; 48 KiB: 760), and the split decides the order of the sums. On
// code-3m that moved llama.cpp-arithmetic perplexity by 4e-4 between two machines. The forward pass
// (evaluation, KL, calibration, AWQ) pins the L1 size so that a model gives the same numbers on every
// machine; only the inner blocking depends on it, the L2/L3 sizes stay as read.
[[maybe_unused]] const bool kEigenBlockingPinned = [] {
    Eigen::setCpuCacheSizes(48 * 1024, Eigen::l2CacheSize(), Eigen::l3CacheSize());
    return true;
}();

constexpr ArchTraits kArchTraits[] = {
    {"llama", true},
    {"mistral", true},
    {"qwen2", false, true},
    {"qwen3", false, false, true},
    {"phi3", false, false, false, true, true},
    {"gemma2", false, false, false, false, false, true},
};

std::optional<double> metaNumber(const Model& model, const std::string& key)
{
    auto it = model.metadata().find(key);
    if (it == model.metadata().end())
        return std::nullopt;
    if (const auto* d = std::get_if<double>(&it->second.value))
        return *d;
    if (const auto* i = std::get_if<int64_t>(&it->second.value))
        return static_cast<double>(*i);
    if (const auto* u = std::get_if<uint64_t>(&it->second.value))
        return static_cast<double>(*u);
    return std::nullopt;
}

std::optional<std::string> metaString(const Model& model, const std::string& key)
{
    auto it = model.metadata().find(key);
    if (it == model.metadata().end())
        return std::nullopt;
    if (const auto* s = std::get_if<std::string>(&it->second.value))
        return *s;
    return std::nullopt;
}

QJsonObject readConfigJson(const Model& model)
{
    std::filesystem::path p = model.path();
    std::error_code ec;
    if (!std::filesystem::is_directory(p, ec))
        p = p.parent_path();
    const std::filesystem::path config = p / "config.json";
    if (!std::filesystem::exists(config, ec))
        return {}; // the architecture's defaults
    // The same rules as every reader of config.json: a regular file within the cap, strict JSON.
    const std::string text = readRegularFile(config, kMaxConfigJsonBytes, "config");
    return json::parseDocument(text, config.string(), "config").object();
}

// Llama 3's frequency-dependent scaling: long wavelengths are stretched by `factor`, short ones kept, with
// a smooth ramp between (same formula in HF's rope_type "llama3" and llama.cpp's rope_freqs tensor).
void applyLlama3Scaling(std::vector<float>& invFreq, double factor, double lowFactor, double highFactor,
                        double originalContext)
{
    const double lowWavelen = originalContext / lowFactor;
    const double highWavelen = originalContext / highFactor;
    for (float& f : invFreq) {
        const double wavelen = 2 * std::numbers::pi / f;
        if (wavelen < highWavelen)
            continue;
        if (wavelen > lowWavelen) {
            f = static_cast<float>(f / factor);
            continue;
        }
        const double smooth = (originalContext / wavelen - lowFactor) / (highFactor - lowFactor);
        f = static_cast<float>((1 - smooth) * f / factor + smooth * f);
    }
}

} // namespace

const ArchTraits* findArchTraits(std::string_view architecture)
{
    for (const auto& t : kArchTraits)
        if (architecture == t.name)
            return &t;
    return nullptr;
}

TransformerConfig transformerConfig(const Model& model)
{
    const ModelConfig& mc = model.config();
    TransformerConfig c;
    c.architecture = mc.architecture;
    const ArchTraits* traits = findArchTraits(mc.architecture);
    if (!traits || !traits->implemented) {
        std::string supported;
        for (const auto& t : kArchTraits)
            if (t.implemented)
                supported += std::string(supported.empty() ? "" : ", ") + t.name;
        throw Error(ErrorCode::Unsupported,
                    "the forward pass does not support architecture '" +
                        (mc.architecture.empty() ? std::string("(unknown)") : mc.architecture) +
                        "' (supported: " + supported + ")");
    }
    c.layers = mc.layers;
    c.hidden = mc.hiddenSize;
    c.intermediate = mc.intermediateSize;
    c.heads = mc.heads;
    c.kvHeads = mc.kvHeads ? mc.kvHeads : mc.heads;
    c.headDim = mc.headDim ? mc.headDim : (mc.heads ? mc.hiddenSize / mc.heads : 0);
    c.vocab = mc.vocabSize;
    c.contextLength = mc.contextLength;
    c.ropeDims = c.headDim;

    double factor = 1.0;
    std::string scalingType;
    double lowFactor = 1, highFactor = 4, originalContext = 8192;
    if (model.format() == ModelFormat::Gguf) {
        const std::string p = mc.architecture + ".";
        c.ropeLayout = RopeLayout::AdjacentPairs;
        if (auto v = metaNumber(model, p + "attention.layer_norm_rms_epsilon"))
            c.rmsEps = static_cast<float>(*v);
        if (auto v = metaNumber(model, p + "rope.freq_base"))
            c.ropeBase = static_cast<float>(*v);
        if (auto v = metaNumber(model, p + "rope.dimension_count"); v && *v > 0)
            c.ropeDims = static_cast<uint32_t>(*v);
        if (auto t = metaString(model, p + "rope.scaling.type"))
            scalingType = *t;
        if (auto v = metaNumber(model, p + "rope.scaling.factor"))
            factor = *v;
    } else {
        const QJsonObject cfg = readConfigJson(model);
        c.ropeLayout = RopeLayout::RotateHalf;
        c.rmsEps = static_cast<float>(cfg.value(QStringLiteral("rms_norm_eps")).toDouble(1e-5));
        c.ropeBase = static_cast<float>(cfg.value(QStringLiteral("rope_theta")).toDouble(10000.0));
        const QJsonObject scaling = cfg.value(QStringLiteral("rope_scaling")).toObject();
        if (!scaling.isEmpty()) {
            QString type = scaling.value(QStringLiteral("rope_type")).toString();
            if (type.isEmpty())
                type = scaling.value(QStringLiteral("type")).toString();
            scalingType = type.toStdString();
            factor = scaling.value(QStringLiteral("factor")).toDouble(1.0);
            lowFactor = scaling.value(QStringLiteral("low_freq_factor")).toDouble(1.0);
            highFactor = scaling.value(QStringLiteral("high_freq_factor")).toDouble(4.0);
            originalContext =
                scaling.value(QStringLiteral("original_max_position_embeddings")).toDouble(8192.0);
        }
    }
    if (c.layers == 0 || c.hidden == 0 || c.heads == 0 || c.headDim == 0 || c.intermediate == 0 ||
        c.kvHeads == 0 || c.heads % c.kvHeads != 0 || c.ropeDims > c.headDim || c.ropeDims % 2 != 0)
        throw Error(ErrorCode::BadValue, "the model's configuration is incomplete or inconsistent (layers " +
                                             std::to_string(c.layers) + ", heads " + std::to_string(c.heads) +
                                             ", kv heads " + std::to_string(c.kvHeads) + ", head dim " +
                                             std::to_string(c.headDim) + ")");
    if (!(c.rmsEps > 0) || !(c.ropeBase > 1) || !std::isfinite(c.ropeBase) || !(factor > 0) ||
        !std::isfinite(factor))
        throw Error(ErrorCode::BadValue, "invalid RMS epsilon, rope base or rope scaling factor");

    c.invFreq.resize(c.ropeDims / 2);
    for (uint32_t i = 0; i < c.ropeDims / 2; ++i)
        c.invFreq[i] = static_cast<float>(std::pow(double(c.ropeBase), -2.0 * i / c.ropeDims));
    if (scalingType == "linear")
        c.ropeLinearScale = static_cast<float>(factor);
    else if (scalingType == "llama3" && factor != 1.0)
        applyLlama3Scaling(c.invFreq, factor, lowFactor, highFactor, originalContext);
    else if (!scalingType.empty() && scalingType != "none" && scalingType != "default")
        throw Error(ErrorCode::Unsupported, "rope scaling '" + scalingType + "' is not supported");
    return c;
}

// Tensor names of one layout (GGUF or Hugging Face).
struct Transformer::Names {
    std::string embedding, outputNorm, output;
    std::vector<LayerTensors> layers;
};

Transformer::Transformer(std::shared_ptr<const Model> model, ForwardOptions options)
    : m_model(std::move(model)), m_options(options), m_config(transformerConfig(*m_model)),
      m_names(std::make_unique<Names>())
{
    const bool gguf = m_model->find("token_embd.weight") != nullptr;
    Names& n = *m_names;
    if (gguf) {
        n.embedding = "token_embd.weight";
        n.outputNorm = "output_norm.weight";
        n.output = m_model->find("output.weight") ? "output.weight" : n.embedding;
    } else {
        n.embedding = "model.embed_tokens.weight";
        n.outputNorm = "model.norm.weight";
        n.output = m_model->find("lm_head.weight") ? "lm_head.weight" : n.embedding;
    }
    for (uint32_t l = 0; l < m_config.layers; ++l) {
        LayerTensors L;
        if (gguf) {
            const std::string p = "blk." + std::to_string(l) + ".";
            L = {p + "attn_norm.weight", p + "attn_q.weight",      p + "attn_k.weight",
                 p + "attn_v.weight",    p + "attn_output.weight", p + "ffn_norm.weight",
                 p + "ffn_gate.weight",  p + "ffn_up.weight",      p + "ffn_down.weight"};
        } else {
            const std::string p = "model.layers." + std::to_string(l) + ".";
            L = {p + "input_layernorm.weight",  p + "self_attn.q_proj.weight",
                 p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
                 p + "self_attn.o_proj.weight", p + "post_attention_layernorm.weight",
                 p + "mlp.gate_proj.weight",    p + "mlp.up_proj.weight",
                 p + "mlp.down_proj.weight"};
        }
        n.layers.push_back(std::move(L));
    }

    // Check every shape now so that a bad file fails before any work.
    const TransformerConfig& c = m_config;
    const TensorInfo& embd = tensor(n.embedding);
    if (embd.shape.size() != 2 || embd.shape[1] != c.hidden)
        throw Error(ErrorCode::BadValue, n.embedding + " is not vocab x " + std::to_string(c.hidden));
    if (c.vocab != 0 && embd.shape[0] != c.vocab)
        throw Error(ErrorCode::BadValue, "the vocabulary has " + std::to_string(c.vocab) +
                                             " tokens but the embedding has " +
                                             std::to_string(embd.shape[0]) + " rows");
    m_config.vocab = static_cast<uint32_t>(embd.shape[0]);
    const uint64_t qDim = uint64_t(c.heads) * c.headDim, kvDim = uint64_t(c.kvHeads) * c.headDim;
    auto expect = [&](const std::string& name, uint64_t rows, uint64_t cols) {
        const TensorInfo& t = tensor(name);
        const uint64_t tr = t.shape.size() == 2 ? t.shape[0] : (t.shape.size() == 1 ? 1 : 0);
        const uint64_t tc = t.shape.empty() ? 0 : t.shape.back();
        if (tr != rows || tc != cols)
            throw Error(ErrorCode::BadValue, name + " has shape " + std::to_string(tr) + " x " +
                                                 std::to_string(tc) + ", expected " + std::to_string(rows) +
                                                 " x " + std::to_string(cols));
    };
    expect(n.outputNorm, 1, c.hidden);
    expect(n.output, m_config.vocab, c.hidden);
    for (const auto& L : n.layers) {
        expect(L.attnNorm, 1, c.hidden);
        expect(L.ffnNorm, 1, c.hidden);
        expect(L.q, qDim, c.hidden);
        expect(L.k, kvDim, c.hidden);
        expect(L.v, kvDim, c.hidden);
        expect(L.o, c.hidden, qDim);
        expect(L.gate, c.intermediate, c.hidden);
        expect(L.up, c.intermediate, c.hidden);
        expect(L.down, c.hidden, c.intermediate);
    }
    // GGUF stores Llama 3's rope scaling as per-frequency divisors.
    if (gguf) {
        if (const TensorInfo* f = m_model->find("rope_freqs.weight")) {
            if (f->elements() != m_config.invFreq.size())
                throw Error(ErrorCode::BadValue, "rope_freqs.weight does not have one value per frequency");
            std::vector<float> factors(m_config.invFreq.size());
            m_model->decode(*f, 0, factors.size(), factors.data());
            for (size_t i = 0; i < factors.size(); ++i) {
                if (!(factors[i] > 0) || !std::isfinite(factors[i]))
                    throw Error(ErrorCode::BadValue, "rope_freqs.weight holds a non-positive factor");
                m_config.invFreq[i] /= factors[i];
            }
        }
    }
}

Transformer::~Transformer() = default;

const TensorInfo* Transformer::findTensor(const std::string& name) const
{
    return m_model->find(name);
}

const TensorInfo& Transformer::tensor(const std::string& name) const
{
    const TensorInfo* t = m_model->find(name);
    if (!t)
        throw Error(ErrorCode::BadValue, "the model has no tensor " + name + " (needed by the forward pass)");
    return *t;
}

const LayerTensors& Transformer::layerTensors(uint32_t layer) const
{
    if (layer >= m_names->layers.size())
        throw Error(ErrorCode::BadValue, "the model has no layer " + std::to_string(layer));
    return m_names->layers[layer];
}

const std::string& Transformer::outputTensor() const
{
    return m_names->output;
}

const std::string& Transformer::embeddingTensor() const
{
    return m_names->embedding;
}

const std::string& Transformer::outputNormTensor() const
{
    return m_names->outputNorm;
}

void Transformer::setWeightOverride(const std::string& name, std::shared_ptr<const std::vector<float>> weights)
{
    if (!weights) {
        m_overrides.erase(name);
        return;
    }
    const TensorInfo& t = tensor(name);
    if (weights->size() != t.rows() * t.columns())
        throw Error(ErrorCode::BadValue, "the replacement for " + name + " has " +
                                             std::to_string(weights->size()) + " values, the tensor " +
                                             std::to_string(t.rows() * t.columns()));
    m_overrides[name] = std::move(weights);
}

void Transformer::clearWeightOverrides()
{
    m_overrides.clear();
}

std::shared_ptr<const std::vector<float>> Transformer::weights(const std::string& name)
{
    return weight(tensor(name));
}

std::shared_ptr<const std::vector<float>> Transformer::weight(const TensorInfo& t)
{
    if (auto it = m_overrides.find(t.name); it != m_overrides.end())
        return it->second;
    if (auto it = m_cache.find(t.name); it != m_cache.end())
        return it->second;
    const uint64_t rows = t.rows(), cols = t.columns();
    auto data = std::make_shared<std::vector<float>>(rows * cols);
    // Decode in row chunks on the workers; ggml blocks never straddle rows.
    const unsigned workers = resolveThreads(m_options.threads);
    const uint64_t chunk = std::max<uint64_t>(1, std::min<uint64_t>(256, rows / (4 * workers) + 1));
    std::atomic<uint64_t> next{0};
    float* out = data->data();
    ThreadPool::instance().runWorkers(workers, [&](unsigned) {
        for (;;) {
            const uint64_t r0 = next.fetch_add(chunk);
            if (r0 >= rows)
                return;
            const uint64_t n = std::min(chunk, rows - r0);
            m_model->decodeRows(t, r0, n, out + r0 * cols);
        }
    });
    if (m_options.plan) {
        if (auto format = m_options.plan->formatOf(t.name)) {
            auto q = findFormat(*format);
            if (!q)
                throw Error(ErrorCode::BadValue,
                            "the plan names unknown format '" + *format + "' for " + t.name);
            if (!q->supports(rows, cols))
                throw Error(ErrorCode::BadValue, "format " + *format + " cannot store " + t.name);
            std::vector<float> rt(data->size());
            q->roundTrip(data->data(), rows, cols, rt.data());
            *data = std::move(rt);
        }
    }
    const uint64_t bytes = data->size() * sizeof(float);
    if (m_cacheBytes + bytes <= m_options.weightCacheBytes) {
        m_cache.emplace(t.name, data);
        m_cacheBytes += bytes;
    }
    return data;
}

ActivationRounding llamaCppActivationRounding(std::string_view type)
{
    // ggml-cpu's vec_dot_type of each weight type (Q8_1 rounds its values as Q8_0 does).
    for (const char* t : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL", "MXFP4"})
        if (type == t)
            return ActivationRounding::Q8_0;
    for (const char* t : {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "IQ2_XXS", "IQ2_XS", "IQ2_S",
                          "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0"})
        if (type == t)
            return ActivationRounding::Q8_K;
    if (type == "F16")
        return ActivationRounding::F16;
    if (type == "BF16")
        return ActivationRounding::BF16;
    return ActivationRounding::None;
}

void roundActivations(ActivationRounding kind, float* x, size_t n)
{
    switch (kind) {
    case ActivationRounding::None:
        return;
    case ActivationRounding::F16:
        for (size_t i = 0; i < n; ++i)
            x[i] = halfToFloat(floatToHalf(x[i]));
        return;
    case ActivationRounding::BF16:
        for (size_t i = 0; i < n; ++i)
            x[i] = bf16ToFloat(floatToBf16(x[i]));
        return;
    case ActivationRounding::Q8_0: // quantize_row_q8_0: d = amax / 127 stored as fp16, q = round(x * 127 / amax)
        for (size_t b = 0; b + 32 <= n; b += 32) {
            float amax = 0;
            for (size_t i = b; i < b + 32; ++i)
                amax = std::max(amax, std::fabs(x[i]));
            const float d = halfToFloat(floatToHalf(amax / 127.0f));
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            for (size_t i = b; i < b + 32; ++i)
                x[i] = d * std::nearbyint(x[i] * id); // the AVX path rounds to nearest even
        }
        return;
    case ActivationRounding::Q8_K: // quantize_row_q8_K: iscale = -127 / (the value of largest |x|), d = 1 / iscale
        for (size_t b = 0; b + 256 <= n; b += 256) {
            float amax = 0, max = 0;
            for (size_t i = b; i < b + 256; ++i)
                if (std::fabs(x[i]) > amax) {
                    amax = std::fabs(x[i]);
                    max = x[i];
                }
            if (amax == 0) {
                std::fill(x + b, x + b + 256, 0.0f);
                continue;
            }
            const float iscale = -127.0f / max, d = 1.0f / iscale;
            for (size_t i = b; i < b + 256; ++i)
                x[i] = d * std::min(127.0f, std::nearbyint(iscale * x[i]));
        }
        return;
    }
}

void Transformer::linear(uint32_t layer, const std::string& name, const Eigen::MatrixXf& xIn,
                         Eigen::MatrixXf& y)
{
    if (m_hook)
        m_hook(LinearInput{layer, name, xIn});
    const TensorInfo& t = tensor(name);
    auto w = weight(t);
    const Eigen::Index rows = static_cast<Eigen::Index>(t.rows()),
                       cols = static_cast<Eigen::Index>(t.columns());
    // llama.cpp's rounding of the input, by the type the weight has in the run (planned, else stored).
    Eigen::MatrixXf rounded;
    const Eigen::MatrixXf* input = &xIn;
    if (m_options.llamaCppActivations) {
        std::optional<std::string> planned = m_options.plan ? m_options.plan->formatOf(t.name) : std::nullopt;
        const ActivationRounding kind =
            llamaCppActivationRounding(planned ? std::string_view(*planned) : std::string_view(dtypeName(t.dtype)));
        const size_t block = kind == ActivationRounding::Q8_0 ? 32 : kind == ActivationRounding::Q8_K ? 256 : 1;
        if (kind != ActivationRounding::None && size_t(cols) % block == 0) {
            rounded = xIn;
            for (Eigen::Index j = 0; j < rounded.cols(); ++j)
                roundActivations(kind, rounded.col(j).data(), size_t(cols));
            input = &rounded;
        }
    }
    const Eigen::MatrixXf& x = *input;
    using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const RowMajor> W(w->data(), rows, cols);
    y.resize(rows, x.cols());
    const unsigned workers = std::min<unsigned>(resolveThreads(m_options.threads),
                                                static_cast<unsigned>(std::max<Eigen::Index>(1, rows / 64)));
    if (workers <= 1) {
        y.noalias() = W * x;
        return;
    }
    const Eigen::Index chunk = std::max<Eigen::Index>(64, rows / (workers * 4));
    std::atomic<Eigen::Index> next{0};
    ThreadPool::instance().runWorkers(workers, [&](unsigned) {
        for (;;) {
            const Eigen::Index r0 = next.fetch_add(chunk);
            if (r0 >= rows)
                return;
            const Eigen::Index n = std::min(chunk, rows - r0);
            y.middleRows(r0, n).noalias() = W.middleRows(r0, n) * x;
        }
    });
}

void Transformer::rmsNorm(const std::string& name, Eigen::MatrixXf& x)
{
    const TensorInfo& t = tensor(name);
    auto w = weight(t);
    Eigen::Map<const Eigen::VectorXf> g(w->data(), static_cast<Eigen::Index>(w->size()));
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
        const float ms = x.col(j).squaredNorm() / static_cast<float>(x.rows());
        x.col(j) = x.col(j).cwiseProduct(g) * (1.0f / std::sqrt(ms + m_config.rmsEps));
    }
}

void Transformer::rope(Eigen::Ref<Eigen::MatrixXf> qk, uint32_t heads, size_t position) const
{
    // qk: (heads * headDim) x 1 for one token.
    const uint32_t d = m_config.headDim, half = m_config.ropeDims / 2;
    const double pos = static_cast<double>(position) / m_config.ropeLinearScale;
    for (uint32_t i = 0; i < half; ++i) {
        const double angle = pos * m_config.invFreq[i];
        const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
        for (uint32_t h = 0; h < heads; ++h) {
            float* v = qk.data() + size_t(h) * d;
            const uint32_t a = m_config.ropeLayout == RopeLayout::AdjacentPairs ? 2 * i : i;
            const uint32_t b = m_config.ropeLayout == RopeLayout::AdjacentPairs ? 2 * i + 1 : i + half;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

Eigen::MatrixXf Transformer::forward(std::span<const int32_t> tokens, KvCache& cache, bool lastOnly)
{
    return std::move(forwardBatch({tokens}, {&cache}, lastOnly).front());
}

Eigen::MatrixXf Transformer::embedColumns(const std::vector<std::span<const int32_t>>& sequences,
                                          const std::vector<size_t>& past, std::vector<Eigen::Index>& firstColumn)
{
    const TransformerConfig& c = m_config;
    firstColumn.clear();
    Eigen::Index total = 0;
    for (size_t s = 0; s < sequences.size(); ++s) {
        const uint64_t end = past[s] + sequences[s].size();
        if (c.contextLength != 0 && end > c.contextLength)
            throw Error(ErrorCode::BadValue, "the context of " + std::to_string(end) +
                                                 " tokens is longer than the model's maximum of " +
                                                 std::to_string(c.contextLength));
        for (int32_t t : sequences[s])
            if (t < 0 || static_cast<uint32_t>(t) >= c.vocab)
                throw Error(ErrorCode::BadValue, "token id " + std::to_string(t) +
                                                     " is outside the vocabulary of " +
                                                     std::to_string(c.vocab));
        firstColumn.push_back(total);
        total += static_cast<Eigen::Index>(sequences[s].size());
    }
    Eigen::MatrixXf x(c.hidden, total);
    const TensorInfo& embd = tensor(m_names->embedding);
    // A planned format or an override applies to the lookup too (llama.cpp's get_rows reads the stored,
    // quantized rows): then the rows come from the whole fake-quantized table (formats with a per-tensor
    // scale need all of it); otherwise only the rows looked up are decoded.
    std::shared_ptr<const std::vector<float>> table;
    if (m_overrides.count(embd.name) || (m_options.plan && m_options.plan->formatOf(embd.name)))
        table = weight(embd);
    std::vector<float> row(c.hidden);
    for (size_t s = 0; s < sequences.size(); ++s)
        for (size_t i = 0; i < sequences[s].size(); ++i) {
            const uint64_t id = static_cast<uint64_t>(sequences[s][i]);
            const float* src = row.data();
            if (table)
                src = table->data() + id * c.hidden;
            else
                m_model->decodeRows(embd, id, 1, row.data());
            x.col(firstColumn[s] + Eigen::Index(i)) = Eigen::Map<const Eigen::VectorXf>(src, c.hidden);
        }
    return x;
}

void Transformer::layerStep(uint32_t l, Eigen::MatrixXf& x, const std::vector<Eigen::Index>& firstColumn,
                            const std::vector<Eigen::Index>& lengths, const std::vector<size_t>& past,
                            const std::vector<Eigen::MatrixXf*>& kOut, const std::vector<Eigen::MatrixXf*>& vOut)
{
    const TransformerConfig& c = m_config;
    const LayerTensors& L = m_names->layers[l];
    const Eigen::Index qDim = Eigen::Index(c.heads) * c.headDim;
    const Eigen::Index total = x.cols();
    Eigen::MatrixXf h, q, k, v, att(qDim, total), tmp, gate, up;
    const uint32_t group = c.heads / c.kvHeads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.headDim));
    h = x;
    rmsNorm(L.attnNorm, h);
    linear(l, L.q, h, q);
    linear(l, L.k, h, k);
    linear(l, L.v, h, v);
    for (size_t s = 0; s < lengths.size(); ++s) {
        Eigen::MatrixXf& K = *kOut[s];
        Eigen::MatrixXf& V = *vOut[s];
        const Eigen::Index n = lengths[s];
        const Eigen::Index p0 = Eigen::Index(past[s]);
        for (Eigen::Index i = 0; i < n; ++i) {
            const Eigen::Index col = firstColumn[s] + i;
            rope(q.col(col), c.heads, past[s] + size_t(i));
            rope(k.col(col), c.kvHeads, past[s] + size_t(i));
            K.col(p0 + i) = k.col(col);
            V.col(p0 + i) = v.col(col);
            if (m_options.llamaCppActivations) { // llama.cpp's default F16 KV cache
                roundActivations(ActivationRounding::F16, K.col(p0 + i).data(), size_t(K.rows()));
                roundActivations(ActivationRounding::F16, V.col(p0 + i).data(), size_t(V.rows()));
            }
        }
        const bool f16Attention = m_options.llamaCppActivations;
        // Causal attention, one (token, head) per work item.
        const Eigen::Index items = n * c.heads;
        std::atomic<Eigen::Index> next{0};
        const unsigned workers = std::min<unsigned>(resolveThreads(m_options.threads),
                                                    static_cast<unsigned>(std::max<Eigen::Index>(1, items / 16)));
        ThreadPool::instance().runWorkers(workers, [&](unsigned) {
            Eigen::VectorXf scores, qRounded;
            for (;;) {
                const Eigen::Index item = next.fetch_add(1);
                if (item >= items)
                    return;
                const Eigen::Index i = item / c.heads, hd = item % c.heads;
                const Eigen::Index kvh = hd / group, col = firstColumn[s] + i;
                const Eigen::Index len = p0 + i + 1;
                auto qv = q.col(col).segment(hd * c.headDim, c.headDim);
                auto Kb = K.block(kvh * c.headDim, 0, c.headDim, len);
                auto Vb = V.block(kvh * c.headDim, 0, c.headDim, len);
                if (f16Attention) { // ggml multiplies the F16 cache with F16-rounded inputs
                    qRounded = qv;
                    roundActivations(ActivationRounding::F16, qRounded.data(), size_t(qRounded.size()));
                    scores.noalias() = (Kb.transpose() * qRounded) * scale;
                } else {
                    scores.noalias() = (Kb.transpose() * qv) * scale;
                }
                const float mx = scores.maxCoeff();
                scores = (scores.array() - mx).exp();
                scores /= scores.sum();
                if (f16Attention)
                    roundActivations(ActivationRounding::F16, scores.data(), size_t(scores.size()));
                att.col(col).segment(hd * c.headDim, c.headDim).noalias() = Vb * scores;
            }
        });
    }
    linear(l, L.o, att, tmp);
    x += tmp;
    h = x;
    rmsNorm(L.ffnNorm, h);
    linear(l, L.gate, h, gate);
    linear(l, L.up, h, up);
    gate = (gate.array() / (1.0f + (-gate.array()).exp())) * up.array(); // SwiGLU: silu(gate) * up
    linear(l, L.down, gate, tmp);
    x += tmp;
}

std::vector<Eigen::MatrixXf> Transformer::forwardBatch(const std::vector<std::span<const int32_t>>& sequences,
                                                       const std::vector<KvCache*>& caches, bool lastOnly)
{
    if (sequences.size() != caches.size())
        throw Error(ErrorCode::Internal, "forwardBatch: one cache per sequence");
    const TransformerConfig& c = m_config;
    const Eigen::Index kvDim = Eigen::Index(c.kvHeads) * c.headDim;

    std::vector<size_t> past;
    std::vector<Eigen::Index> lengths;
    for (size_t s = 0; s < sequences.size(); ++s) {
        const KvCache& kv = *caches[s];
        past.push_back(kv.m_k.size() == c.layers ? kv.m_length : 0);
        lengths.push_back(Eigen::Index(sequences[s].size()));
    }
    std::vector<Eigen::Index> firstColumn;
    Eigen::MatrixXf x = embedColumns(sequences, past, firstColumn);
    // Grow the caches.
    for (size_t s = 0; s < sequences.size(); ++s) {
        KvCache& kv = *caches[s];
        if (kv.m_k.size() != c.layers) {
            kv.m_k.assign(c.layers, Eigen::MatrixXf(kvDim, 0));
            kv.m_v.assign(c.layers, Eigen::MatrixXf(kvDim, 0));
            kv.m_length = 0;
        }
        const Eigen::Index need = Eigen::Index(kv.m_length + sequences[s].size());
        if (kv.m_k[0].cols() < need) {
            const Eigen::Index cap = std::max<Eigen::Index>(need, kv.m_k[0].cols() * 2);
            for (uint32_t l = 0; l < c.layers; ++l) {
                kv.m_k[l].conservativeResize(kvDim, cap);
                kv.m_v[l].conservativeResize(kvDim, cap);
            }
        }
    }
    std::vector<Eigen::MatrixXf*> ks(sequences.size()), vs(sequences.size());
    for (uint32_t l = 0; l < c.layers; ++l) {
        for (size_t s = 0; s < sequences.size(); ++s) {
            ks[s] = &caches[s]->m_k[l];
            vs[s] = &caches[s]->m_v[l];
        }
        layerStep(l, x, firstColumn, lengths, past, ks, vs);
    }
    for (size_t s = 0; s < sequences.size(); ++s)
        caches[s]->m_length += sequences[s].size();

    Eigen::MatrixXf last;
    if (lastOnly) {
        last.resize(c.hidden, Eigen::Index(sequences.size()));
        for (size_t s = 0; s < sequences.size(); ++s) {
            if (sequences[s].empty())
                throw Error(ErrorCode::BadValue, "a sequence without new tokens has no last logits");
            last.col(Eigen::Index(s)) = x.col(firstColumn[s] + Eigen::Index(sequences[s].size()) - 1);
        }
        x = std::move(last);
    }
    rmsNorm(m_names->outputNorm, x);
    Eigen::MatrixXf logits;
    linear(c.layers, m_names->output, x, logits);
    std::vector<Eigen::MatrixXf> out;
    for (size_t s = 0; s < sequences.size(); ++s) {
        if (lastOnly)
            out.emplace_back(logits.col(Eigen::Index(s)));
        else
            out.emplace_back(logits.middleCols(firstColumn[s], Eigen::Index(sequences[s].size())));
    }
    return out;
}

HiddenStates Transformer::embed(const std::vector<std::span<const int32_t>>& sequences)
{
    HiddenStates h;
    std::vector<Eigen::Index> firstColumn;
    h.x = embedColumns(sequences, std::vector<size_t>(sequences.size(), 0), firstColumn);
    for (const auto& s : sequences)
        h.lengths.push_back(Eigen::Index(s.size()));
    return h;
}

void Transformer::runLayers(HiddenStates& h, uint32_t first, uint32_t last)
{
    const TransformerConfig& c = m_config;
    if (first > last || last > c.layers)
        throw Error(ErrorCode::BadValue, "layers " + std::to_string(first) + ".." + std::to_string(last) +
                                             " are outside the model's " + std::to_string(c.layers));
    std::vector<Eigen::Index> firstColumn;
    Eigen::Index total = 0;
    for (Eigen::Index n : h.lengths) {
        firstColumn.push_back(total);
        total += n;
    }
    if (total != h.x.cols() || h.x.rows() != Eigen::Index(c.hidden))
        throw Error(ErrorCode::BadValue, "the hidden states do not match the model or their lengths");
    const Eigen::Index kvDim = Eigen::Index(c.kvHeads) * c.headDim;
    // One layer's keys and values at a time, reused across layers.
    std::vector<Eigen::MatrixXf> K(h.lengths.size()), V(h.lengths.size());
    std::vector<Eigen::MatrixXf*> ks, vs;
    for (size_t s = 0; s < h.lengths.size(); ++s) {
        K[s].resize(kvDim, h.lengths[s]);
        V[s].resize(kvDim, h.lengths[s]);
        ks.push_back(&K[s]);
        vs.push_back(&V[s]);
    }
    const std::vector<size_t> past(h.lengths.size(), 0);
    for (uint32_t l = first; l < last; ++l)
        layerStep(l, h.x, firstColumn, h.lengths, past, ks, vs);
}

Eigen::MatrixXf Transformer::logits(const HiddenStates& h)
{
    Eigen::MatrixXf x = h.x;
    rmsNorm(m_names->outputNorm, x);
    Eigen::MatrixXf out;
    linear(m_config.layers, m_names->output, x, out);
    return out;
}

std::vector<int32_t> Transformer::generateGreedy(std::span<const int32_t> prompt, size_t n, KvCache& cache,
                                                 std::optional<int32_t> stopToken)
{
    std::vector<int32_t> out;
    if (n == 0)
        return out;
    if (prompt.empty())
        throw Error(ErrorCode::BadValue, "generation needs at least one token to start from");
    // Refuse before any work: the last generated token is never run through the model.
    const uint64_t needed = cache.length() + prompt.size() + n - 1;
    if (m_config.contextLength != 0 && needed > m_config.contextLength)
        throw Error(ErrorCode::BadValue, "the context of " + std::to_string(needed) +
                                             " tokens is longer than the model's maximum of " +
                                             std::to_string(m_config.contextLength));
    Eigen::MatrixXf logits;
    int32_t next = 0;
    std::vector<int32_t> one(prompt.begin(), prompt.end());
    for (size_t i = 0; i < n; ++i) {
        logits = forward(one, cache, true);
        Eigen::Index best = 0;
        logits.col(0).maxCoeff(&best);
        next = static_cast<int32_t>(best);
        out.push_back(next);
        if (stopToken && next == *stopToken)
            break;
        one.assign(1, next);
    }
    return out;
}

} // namespace qs
