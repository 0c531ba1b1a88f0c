// Hugging Face config.json -> ModelConfig. Key names differ between families (GPT-2's n_embd / n_layer,
// Falcon's num_kv_heads, MoE expert counts), multimodal checkpoints nest the language model in text_config,
// and defaults (tied embeddings, sliding-window layers) depend on the model type, as in transformers.
#include "core/model/archlimits.h"
#include "core/util/fileio.h"
#include "core/io/jsonscan.h"
#include "core/model/mappedfile.h"
#include "core/model/model.h"
#include "core/util/checked.h"
#include "core/util/error.h"

#include <QJsonArray>
#include <QJsonValue>
#include <algorithm>
#include <initializer_list>
#include <limits>

namespace qs {

namespace {

// Far beyond any real network, small enough that per-layer lists stay cheap whatever the file claims.
constexpr uint64_t kMaxLayers = 65536;

struct Scope {
    QJsonObject object;
    std::vector<json::Member> members;
    std::string prefix; // "" or "text_config."
};

struct Found {
    QJsonValue value;
    std::string field;
    uint64_t offset;
};

class ConfigReader {
public:
    ConfigReader(std::string file, std::string_view text) : m_file(std::move(file)), m_text(text)
    {
        Scope top;
        top.object = json::parseObject(text, m_file, 0, "config", &top.members);
        // The language model of a multimodal checkpoint is described in text_config.
        if (const auto* m = member(top, "text_config")) {
            const auto value = top.object.value(QStringLiteral("text_config"));
            if (value.isObject()) {
                Scope inner;
                inner.object = value.toObject();
                inner.members = json::objectMembers(text, m->valueOffset);
                inner.prefix = "text_config.";
                if (inner.members.size() != static_cast<size_t>(inner.object.size())) {
                    const auto* dup = json::findDuplicate(inner.members);
                    fail(ErrorCode::BadValue, "text_config." + (dup ? dup->key : std::string()),
                         dup ? dup->keyOffset : m->valueOffset, "appears twice");
                }
                m_scopes.push_back(std::move(inner));
            } else if (!value.isNull()) {
                fail(ErrorCode::BadValue, "text_config", m->valueOffset, "must be an object");
            }
        }
        m_scopes.push_back(std::move(top));
    }

    [[noreturn]] void fail(ErrorCode code, const std::string& field, uint64_t offset,
                           const std::string& msg) const
    {
        throw FormatError(code, m_file, field, offset, msg);
    }

    // First of `keys` present and not null, text_config before the top level.
    std::optional<Found> find(std::initializer_list<const char*> keys, bool topOnly = false) const
    {
        for (const auto& scope : m_scopes) {
            if (topOnly && !scope.prefix.empty())
                continue;
            for (const char* key : keys) {
                const auto* m = member(scope, key);
                if (!m)
                    continue;
                const auto value = scope.object.value(QString::fromUtf8(key));
                if (value.isNull() || value.isUndefined())
                    continue;
                return Found{value, scope.prefix + key, m->valueOffset};
            }
        }
        return std::nullopt;
    }

    std::optional<uint64_t> count(std::initializer_list<const char*> keys, uint64_t max) const
    {
        const auto f = find(keys);
        if (!f)
            return std::nullopt;
        if (!f->value.isDouble())
            fail(ErrorCode::BadValue, f->field, f->offset, "must be a non-negative integer");
        const double d = f->value.toDouble();
        const qint64 i = f->value.toInteger(-1);
        if (i < 0) {
            if (d >= 9.2e18) // integral but beyond qint64
                fail(ErrorCode::Overflow, f->field, f->offset, "value is too large");
            fail(ErrorCode::BadValue, f->field, f->offset, "must be a non-negative integer");
        }
        if (static_cast<uint64_t>(i) > max)
            fail(ErrorCode::Overflow, f->field, f->offset,
                 std::to_string(i) + " exceeds the limit of " + std::to_string(max));
        return static_cast<uint64_t>(i);
    }

    std::optional<uint32_t> u32(std::initializer_list<const char*> keys) const
    {
        const auto v = count(keys, std::numeric_limits<uint32_t>::max());
        return v ? std::optional<uint32_t>(static_cast<uint32_t>(*v)) : std::nullopt;
    }

    std::optional<bool> boolean(const char* key) const
    {
        const auto f = find({key});
        if (!f)
            return std::nullopt;
        if (!f->value.isBool())
            fail(ErrorCode::BadValue, f->field, f->offset, "must be true or false");
        return f->value.toBool();
    }

    std::optional<std::string> string(const char* key, bool topOnly) const
    {
        const auto f = find({key}, topOnly);
        if (!f)
            return std::nullopt;
        if (!f->value.isString())
            fail(ErrorCode::BadValue, f->field, f->offset, "must be a string");
        return f->value.toString().toStdString();
    }

    const std::vector<Scope>& scopes() const { return m_scopes; }

private:
    static const json::Member* member(const Scope& scope, std::string_view key)
    {
        for (const auto& m : scope.members)
            if (m.key == key)
                return &m;
        return nullptr;
    }

    std::string m_file;
    std::string_view m_text;
    std::vector<Scope> m_scopes; // text_config first (when present), then the top level
};

// transformers' per-class default for tie_word_embeddings when config.json does not say.
bool tiesByDefault(std::string_view type)
{
    return type == "gpt2" || type.starts_with("gemma") || type.starts_with("paligemma") || type == "opt" ||
           type == "bloom" || type == "falcon" || type.starts_with("cohere") || type == "mamba";
}

void readSlidingWindow(const ConfigReader& r, const std::string& type, ModelConfig& c)
{
    const auto window = r.u32({"sliding_window"});
    if (!window || *window == 0)
        return;
    const auto use = r.boolean("use_sliding_window");
    if (use && !*use)
        return; // Qwen2 ships sliding_window with the feature switched off
    const auto types = r.find({"layer_types"});
    if (!types && !use && (type.starts_with("qwen2") || type.starts_with("qwen3")))
        return; // without layer_types or use_sliding_window, transformers' default for Qwen is off
    c.slidingWindow = *window;

    std::vector<bool> sliding(c.layers, true);
    if (types) {
        if (!types->value.isArray())
            r.fail(ErrorCode::BadValue, types->field, types->offset, "must be an array of strings");
        const auto array = types->value.toArray();
        if (static_cast<uint64_t>(array.size()) != c.layers)
            r.fail(ErrorCode::BadValue, types->field, types->offset,
                   "has " + std::to_string(array.size()) + " entries for " + std::to_string(c.layers) +
                       " layers");
        for (qsizetype i = 0; i < array.size(); ++i) {
            if (!array[i].isString())
                r.fail(ErrorCode::BadValue, types->field, types->offset, "must be an array of strings");
            sliding[static_cast<size_t>(i)] = array[i].toString() == QLatin1String("sliding_attention");
        }
    } else if (const auto pattern = r.u32({"sliding_window_pattern"}); pattern && *pattern > 0) {
        // Every pattern-th layer (1-based) is global: Gemma-3 uses 6, Cohere-2 uses 4.
        for (uint32_t i = 0; i < c.layers; ++i)
            sliding[i] = (i + 1) % *pattern != 0;
    } else if (type == "gemma2") {
        for (uint32_t i = 0; i < c.layers; ++i)
            sliding[i] = i % 2 == 0; // alternating, starting with a local layer
    } else if (type == "gemma3" || type == "gemma3_text") {
        for (uint32_t i = 0; i < c.layers; ++i)
            sliding[i] = (i + 1) % 6 != 0; // transformers' default sliding_window_pattern
    } else if (use) {
        // Qwen2: layers from max_window_layers on use the window.
        const uint32_t first = r.u32({"max_window_layers"}).value_or(0);
        for (uint32_t i = 0; i < c.layers; ++i)
            sliding[i] = i >= first;
    }
    const auto n = static_cast<size_t>(std::count(sliding.begin(), sliding.end(), true));
    if (n == 0 && c.layers > 0) {
        c.slidingWindow = 0;
        return;
    }
    if (n == sliding.size())
        return; // every layer: an empty list
    for (uint32_t i = 0; i < c.layers; ++i)
        if (sliding[i])
            c.slidingWindowLayers.push_back(i);
}

// model_type for checkpoints whose config.json names only the class.
std::string typeOfClass(const std::string& cls)
{
    static const std::pair<const char*, const char*> map[] = {
        {"LlamaForCausalLM", "llama"}, {"MistralForCausalLM", "mistral"}, {"Qwen2ForCausalLM", "qwen2"},
        {"Qwen3ForCausalLM", "qwen3"}, {"GemmaForCausalLM", "gemma"},     {"Gemma2ForCausalLM", "gemma2"},
        {"Phi3ForCausalLM", "phi3"},   {"MixtralForCausalLM", "mixtral"},
    };
    for (const auto& [c, t] : map)
        if (cls == c)
            return t;
    return {};
}

} // namespace

HfConfig parseHfConfig(std::string_view text, const std::string& name)
{
    const ConfigReader r(name, text);

    HfConfig out;
    ModelConfig& c = out.config;
    // The checkpoint's own type names the architecture; text_config's type decides text-model defaults.
    std::string topType = r.string("model_type", true).value_or("");
    std::string type = r.string("model_type", false).value_or(topType);
    if (type.empty()) {
        if (const auto archs = r.find({"architectures"}, true)) {
            if (!archs->value.isArray())
                r.fail(ErrorCode::BadValue, archs->field, archs->offset, "must be an array of strings");
            const auto list = archs->value.toArray();
            if (!list.isEmpty() && list.first().isString())
                type = topType = typeOfClass(list.first().toString().toStdString());
        }
    }
    c.architecture = topType.empty() ? type : topType;
    out.modelType = type;
    out.attentionBias = r.boolean("attention_bias");
    out.mlpBias = r.boolean("mlp_bias");
    out.dtype = r.string("torch_dtype", false).value_or("");
    if (out.dtype.empty())
        out.dtype = r.string("dtype", false).value_or("");

    c.layers = static_cast<uint32_t>(
        r.count({"num_hidden_layers", "n_layer", "num_layers"}, kMaxLayers).value_or(0));
    c.hiddenSize = r.u32({"hidden_size", "n_embd", "d_model"}).value_or(0);
    c.heads = r.u32({"num_attention_heads", "n_head", "num_heads"}).value_or(0);
    if (const auto kv = r.u32({"num_key_value_heads", "num_kv_heads", "n_head_kv"}))
        c.kvHeads = *kv;
    else if (r.boolean("multi_query").value_or(false))
        c.kvHeads = 1;
    else
        c.kvHeads = c.heads;
    if (const auto hd = r.u32({"head_dim"}))
        c.headDim = *hd;
    else if (c.heads > 0 && c.hiddenSize % c.heads == 0)
        c.headDim = c.hiddenSize / c.heads;

    if (const auto inter = r.u32({"intermediate_size", "n_inner", "ffn_dim"})) {
        c.intermediateSize = *inter;
    } else if (r.find({"n_embd"}) || type == "gpt2" || type == "gptj" || type == "gpt_bigcode") {
        // GPT-2 style: n_inner null means 4 * n_embd.
        const uint64_t four = 4ull * c.hiddenSize;
        if (four > std::numeric_limits<uint32_t>::max()) {
            const auto f = r.find({"n_embd", "hidden_size"});
            r.fail(ErrorCode::Overflow, f ? f->field : "n_embd", f ? f->offset : 0,
                   "4 x hidden size overflows");
        }
        c.intermediateSize = static_cast<uint32_t>(four);
    }

    c.vocabSize = r.u32({"vocab_size", "padded_vocab_size"}).value_or(0);
    c.contextLength =
        r.count({"max_position_embeddings", "n_positions", "n_ctx", "seq_length", "max_sequence_length"},
                std::numeric_limits<uint64_t>::max())
            .value_or(0);
    c.tiedEmbeddings = r.boolean("tie_word_embeddings")
                           .value_or(tiesByDefault(type) || (topType != type && tiesByDefault(topType)));
    readSlidingWindow(r, type, c);
    c.experts = r.u32({"num_local_experts", "num_experts", "n_routed_experts"}).value_or(0);
    c.expertsUsed = r.u32({"num_experts_per_tok", "experts_per_token", "moe_top_k"}).value_or(0);
    checkArchitecture(c, name);
    return out;
}

ModelConfig readHfConfig(const std::filesystem::path& path)
{
    const std::string text = readRegularFile(path, kMaxConfigJsonBytes, "config");
    return parseHfConfig(text, path.string()).config;
}

} // namespace qs
