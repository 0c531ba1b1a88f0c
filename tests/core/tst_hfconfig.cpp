// config.json reader: real-shaped configs of each family with every field asserted, the sample's config,
// and hostile JSON.
#include "core/model/model.h"
#include "core/util/error.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>
#include <filesystem>

using qs::ErrorCode;

namespace {

qs::ModelConfig readConfig(const QByteArray& json)
{
    QTemporaryDir dir;
    const QString path = dir.filePath("config.json");
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly) || f.write(json) != json.size())
        throw std::runtime_error("cannot write config.json");
    f.close();
    return qs::readHfConfig(path.toStdString());
}

QString layerList(const std::vector<uint32_t>& layers)
{
    QStringList parts;
    for (auto l : layers)
        parts << QString::number(l);
    return parts.join(',');
}

// Configs as published on the Hugging Face Hub (unused keys trimmed a little).
const QByteArray kLlama3_8B =
    R"({"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
"bos_token_id":128000,"eos_token_id":128001,"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,
"intermediate_size":14336,"max_position_embeddings":8192,"model_type":"llama","num_attention_heads":32,
"num_hidden_layers":32,"num_key_value_heads":8,"pretraining_tp":1,"rms_norm_eps":1e-05,"rope_scaling":null,
"rope_theta":500000.0,"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.40.0.dev0",
"use_cache":true,"vocab_size":128256})";

const QByteArray kMistral7B = R"({"architectures":["MistralForCausalLM"],"bos_token_id":1,"eos_token_id":2,
"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,"intermediate_size":14336,
"max_position_embeddings":32768,"model_type":"mistral","num_attention_heads":32,"num_hidden_layers":32,
"num_key_value_heads":8,"rms_norm_eps":1e-05,"rope_theta":10000.0,"sliding_window":4096,
"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.34.0.dev0","use_cache":true,
"vocab_size":32000})";

const QByteArray kQwen2_7B = R"({"architectures":["Qwen2ForCausalLM"],"attention_dropout":0.0,
"bos_token_id":151643,"eos_token_id":151643,"hidden_act":"silu","hidden_size":3584,"initializer_range":0.02,
"intermediate_size":18944,"max_position_embeddings":131072,"max_window_layers":28,"model_type":"qwen2",
"num_attention_heads":28,"num_hidden_layers":28,"num_key_value_heads":4,"rms_norm_eps":1e-06,
"rope_theta":1000000.0,"sliding_window":131072,"tie_word_embeddings":false,"torch_dtype":"bfloat16",
"transformers_version":"4.37.2","use_cache":true,"use_sliding_window":false,"vocab_size":152064})";

const QByteArray kGemma2_9B = R"({"architectures":["Gemma2ForCausalLM"],"attention_bias":false,
"attention_dropout":0.0,"attn_logit_softcapping":50.0,"bos_token_id":2,"cache_implementation":"hybrid",
"eos_token_id":1,"final_logit_softcapping":30.0,"head_dim":256,"hidden_act":"gelu_pytorch_tanh",
"hidden_activation":"gelu_pytorch_tanh","hidden_size":3584,"initializer_range":0.02,"intermediate_size":14336,
"max_position_embeddings":8192,"model_type":"gemma2","num_attention_heads":16,"num_hidden_layers":42,
"num_key_value_heads":8,"pad_token_id":0,"query_pre_attn_scalar":256,"rms_norm_eps":1e-06,"rope_theta":10000.0,
"sliding_window":4096,"sliding_window_size":4096,"torch_dtype":"float32","transformers_version":"4.42.0.dev0",
"use_cache":true,"vocab_size":256000})";

const QByteArray kPhi3Mini = R"({"_name_or_path":"Phi-3-mini-4k-instruct","architectures":["Phi3ForCausalLM"],
"attention_dropout":0.0,"auto_map":{"AutoConfig":"configuration_phi3.Phi3Config",
"AutoModelForCausalLM":"modeling_phi3.Phi3ForCausalLM"},"bos_token_id":1,"embd_pdrop":0.0,"eos_token_id":32000,
"hidden_act":"silu","hidden_size":3072,"initializer_range":0.02,"intermediate_size":8192,
"max_position_embeddings":4096,"model_type":"phi3","num_attention_heads":32,"num_hidden_layers":32,
"num_key_value_heads":32,"original_max_position_embeddings":4096,"pad_token_id":32000,"resid_pdrop":0.0,
"rms_norm_eps":1e-05,"rope_scaling":null,"rope_theta":10000.0,"sliding_window":2047,"tie_word_embeddings":false,
"torch_dtype":"bfloat16","transformers_version":"4.40.2","use_cache":true,"attention_bias":false,"vocab_size":32064})";

const QByteArray kGpt2 =
    R"({"activation_function":"gelu_new","architectures":["GPT2LMHeadModel"],"attn_pdrop":0.1,
"bos_token_id":50256,"embd_pdrop":0.1,"eos_token_id":50256,"initializer_range":0.02,"layer_norm_epsilon":1e-05,
"model_type":"gpt2","n_ctx":1024,"n_embd":768,"n_head":12,"n_layer":12,"n_positions":1024,"resid_pdrop":0.1,
"summary_activation":null,"summary_first_dropout":0.1,"summary_proj_to_labels":true,"summary_type":"cls_index",
"summary_use_proj":true,"task_specific_params":{"text-generation":{"do_sample":true,"max_length":50}},
"vocab_size":50257})";

const QByteArray kMixtral =
    R"({"architectures":["MixtralForCausalLM"],"attention_dropout":0.0,"bos_token_id":1,
"eos_token_id":2,"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,"intermediate_size":14336,
"max_position_embeddings":32768,"model_type":"mixtral","num_attention_heads":32,"num_experts_per_tok":2,
"num_hidden_layers":32,"num_key_value_heads":8,"num_local_experts":8,"output_router_logits":false,
"rms_norm_eps":1e-05,"rope_theta":1000000.0,"router_aux_loss_coef":0.02,"sliding_window":null,
"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.36.0.dev0","use_cache":true,
"vocab_size":32000})";

// Multimodal: the language model lives in text_config; the vision tower's keys must not leak in.
const QByteArray kGemma3_4B = R"({"architectures":["Gemma3ForConditionalGeneration"],"boi_token_index":255999,
"eoi_token_index":256000,"eos_token_id":[1,106],"image_token_index":262144,"initializer_range":0.02,
"mm_tokens_per_image":256,"model_type":"gemma3","text_config":{"attention_bias":false,"head_dim":256,
"hidden_size":2560,"intermediate_size":10240,"max_position_embeddings":131072,"model_type":"gemma3_text",
"num_attention_heads":8,"num_hidden_layers":34,"num_key_value_heads":4,"query_pre_attn_scalar":256,
"rope_scaling":{"factor":8.0,"rope_type":"linear"},"sliding_window":1024,"sliding_window_pattern":6,
"vocab_size":262208},"torch_dtype":"bfloat16","transformers_version":"4.50.0.dev0","vision_config":{
"hidden_size":1152,"image_size":896,"intermediate_size":4304,"model_type":"siglip_vision_model",
"num_attention_heads":16,"num_hidden_layers":27,"patch_size":14,"vision_use_head":false}})";

const QByteArray kQwen2MoeSliding = R"({"architectures":["Qwen2MoeForCausalLM"],"hidden_size":2048,
"intermediate_size":5632,"moe_intermediate_size":1408,"shared_expert_intermediate_size":5632,
"max_position_embeddings":8192,"max_window_layers":20,"model_type":"qwen2_moe","num_attention_heads":16,
"num_experts":60,"num_experts_per_tok":4,"num_hidden_layers":24,"num_key_value_heads":16,"sliding_window":4096,
"tie_word_embeddings":false,"use_sliding_window":true,"vocab_size":151936})";

const QByteArray kLayerTypes = R"({"model_type":"gemma3_text","num_hidden_layers":4,"hidden_size":64,
"num_attention_heads":4,"intermediate_size":128,"vocab_size":100,"sliding_window":512,"sliding_window_pattern":2,
"layer_types":["full_attention","sliding_attention","sliding_attention","full_attention"],"head_dim":null,
"tie_word_embeddings":false})";

} // namespace

class TestHfConfig : public QObject {
    Q_OBJECT
private slots:
    void families_data()
    {
        QTest::addColumn<QByteArray>("json");
        QTest::addColumn<QString>("arch");
        QTest::addColumn<uint>("layers");
        QTest::addColumn<uint>("hidden");
        QTest::addColumn<uint>("inter");
        QTest::addColumn<uint>("heads");
        QTest::addColumn<uint>("kv");
        QTest::addColumn<uint>("headDim");
        QTest::addColumn<uint>("vocab");
        QTest::addColumn<qulonglong>("ctx");
        QTest::addColumn<bool>("tied");
        QTest::addColumn<uint>("window");
        QTest::addColumn<QString>("windowLayers");
        QTest::addColumn<uint>("experts");
        QTest::addColumn<uint>("used");

        QTest::newRow("Llama-3-8B") << kLlama3_8B << QString("llama") << 32u << 4096u << 14336u << 32u << 8u
                                    << 128u << 128256u << 8192ull << false << 0u << QString("") << 0u << 0u;
        QTest::newRow("Mistral-7B") << kMistral7B << QString("mistral") << 32u << 4096u << 14336u << 32u << 8u
                                    << 128u << 32000u << 32768ull << false << 4096u << QString("") << 0u
                                    << 0u;
        QTest::newRow("Qwen2-7B") << kQwen2_7B << QString("qwen2") << 28u << 3584u << 18944u << 28u << 4u
                                  << 128u << 152064u << 131072ull << false << 0u << QString("") << 0u << 0u;
        QString gemma2Layers;
        for (int i = 0; i < 42; i += 2)
            gemma2Layers += (i ? "," : "") + QString::number(i);
        QTest::newRow("Gemma-2-9B") << kGemma2_9B << QString("gemma2") << 42u << 3584u << 14336u << 16u << 8u
                                    << 256u << 256000u << 8192ull << true << 4096u << gemma2Layers << 0u
                                    << 0u;
        QTest::newRow("Phi-3-mini") << kPhi3Mini << QString("phi3") << 32u << 3072u << 8192u << 32u << 32u
                                    << 96u << 32064u << 4096ull << false << 2047u << QString("") << 0u << 0u;
        QTest::newRow("GPT-2") << kGpt2 << QString("gpt2") << 12u << 768u << 3072u << 12u << 12u << 64u
                               << 50257u << 1024ull << true << 0u << QString("") << 0u << 0u;
        QTest::newRow("Mixtral-8x7B") << kMixtral << QString("mixtral") << 32u << 4096u << 14336u << 32u << 8u
                                      << 128u << 32000u << 32768ull << false << 0u << QString("") << 8u << 2u;
        QString gemma3Layers;
        for (int i = 0; i < 34; ++i)
            if ((i + 1) % 6 != 0)
                gemma3Layers += (gemma3Layers.isEmpty() ? "" : ",") + QString::number(i);
        QTest::newRow("Gemma-3-4B multimodal")
            << kGemma3_4B << QString("gemma3") << 34u << 2560u << 10240u << 8u << 4u << 256u << 262208u
            << 131072ull << true << 1024u << gemma3Layers << 0u << 0u;
        QTest::newRow("Qwen2-MoE sliding")
            << kQwen2MoeSliding << QString("qwen2_moe") << 24u << 2048u << 5632u << 16u << 16u << 128u
            << 151936u << 8192ull << false << 4096u << QString("20,21,22,23") << 60u << 4u;
        QTest::newRow("layer_types wins")
            << kLayerTypes << QString("gemma3_text") << 4u << 64u << 128u << 4u << 4u << 16u << 100u << 0ull
            << false << 512u << QString("1,2") << 0u << 0u;
        const QByteArray sample = [] {
            QFile f(QS_SAMPLE_DIR "/stories260K/hf-f32/config.json");
            return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
        }();
        QTest::newRow("stories260K") << sample << QString("llama") << 5u << 64u << 172u << 8u << 4u << 8u
                                     << 512u << 512ull << false << 0u << QString("") << 0u << 0u;
    }

    void families()
    {
        QFETCH(QByteArray, json);
        QVERIFY(!json.isEmpty());
        const auto c = readConfig(json);
        QTEST(QString::fromStdString(c.architecture), "arch");
        QTEST(uint(c.layers), "layers");
        QTEST(uint(c.hiddenSize), "hidden");
        QTEST(uint(c.intermediateSize), "inter");
        QTEST(uint(c.heads), "heads");
        QTEST(uint(c.kvHeads), "kv");
        QTEST(uint(c.headDim), "headDim");
        QTEST(uint(c.vocabSize), "vocab");
        QTEST(qulonglong(c.contextLength), "ctx");
        QTEST(c.tiedEmbeddings, "tied");
        QTEST(uint(c.slidingWindow), "window");
        QTEST(layerList(c.slidingWindowLayers), "windowLayers");
        QTEST(uint(c.experts), "experts");
        QTEST(uint(c.expertsUsed), "used");
    }

    void tieDefaults()
    {
        QVERIFY(readConfig(R"({"model_type":"gemma"})").tiedEmbeddings);
        QVERIFY(!readConfig(R"({"model_type":"llama"})").tiedEmbeddings);
        QVERIFY(!readConfig(R"({"model_type":"gpt2","tie_word_embeddings":false})").tiedEmbeddings);
        QVERIFY(readConfig(R"({"model_type":"llama","tie_word_embeddings":true})").tiedEmbeddings);
        // GPT-2 with an explicit n_inner, and Falcon's multi-query attention.
        QCOMPARE(readConfig(R"({"model_type":"gpt2","n_embd":1024,"n_inner":2048})").intermediateSize, 2048u);
        QCOMPARE(readConfig(R"({"model_type":"falcon","num_attention_heads":71,"multi_query":true})").kvHeads,
                 1u);
        // head_dim is not derived when heads do not divide the hidden size.
        QCOMPARE(readConfig(R"({"hidden_size":100,"num_attention_heads":3})").headDim, 0u);
    }

    void hostile_data()
    {
        QTest::addColumn<QByteArray>("json");
        QTest::addColumn<int>("code");
        QTest::addColumn<QString>("field");
        QTest::addColumn<QByteArray>("needle"); // error offset = first occurrence; empty: any offset

        auto row = [](const char* tag, const QByteArray& json, ErrorCode code, const char* field,
                      const QByteArray& needle) {
            QTest::newRow(tag) << json << int(code) << QString(field) << needle;
        };
        row("empty file", "", ErrorCode::BadValue, "config", "");
        row("array", "[1]", ErrorCode::BadValue, "config", "[");
        row("truncated", R"({"num_hidden_layers": 3)", ErrorCode::BadValue, "config", "");
        row("not utf-8", "{\"model_type\":\"l\xfflama\"}", ErrorCode::BadValue, "config", "\xff");
        row("deep nesting", "{\"x\":" + QByteArray(3000, '[') + QByteArray(3000, ']') + "}",
            ErrorCode::BadValue, "config", "");
        row("layers as string", R"({"num_hidden_layers":"32"})", ErrorCode::BadValue, "num_hidden_layers",
            "\"32");
        row("negative", R"({"hidden_size":-1})", ErrorCode::BadValue, "hidden_size", "-1");
        row("fraction", R"({"num_attention_heads":1.5})", ErrorCode::BadValue, "num_attention_heads", "1.5");
        row("beyond u32", R"({"vocab_size":4294967296})", ErrorCode::Overflow, "vocab_size", "4294967296");
        row("1e30", R"({"n_layer":1e30})", ErrorCode::Overflow, "n_layer", "1e30");
        row("bool as string", R"({"tie_word_embeddings":"false"})", ErrorCode::BadValue,
            "tie_word_embeddings", "\"false");
        row("model_type number", R"({"model_type":5})", ErrorCode::BadValue, "model_type", "5");
        row("text_config array", R"({"text_config":[]})", ErrorCode::BadValue, "text_config", "[]");
        row("bad text_config field", R"({"hidden_size":8,"text_config":{"hidden_size":"x"}})",
            ErrorCode::BadValue, "text_config.hidden_size", "\"x");
        row("duplicate key", R"({"hidden_size":8,"hidden_size":16})", ErrorCode::BadValue, "hidden_size",
            "\"hidden_size\":16");
        row("layer_types not array", R"({"num_hidden_layers":2,"sliding_window":4,"layer_types":"x"})",
            ErrorCode::BadValue, "layer_types", "\"x");
        row("layer_types length",
            R"({"num_hidden_layers":3,"sliding_window":4,"layer_types":["full_attention"]})",
            ErrorCode::BadValue, "layer_types", "[\"full");
        row("layer_types items", R"({"num_hidden_layers":1,"sliding_window":4,"layer_types":[1]})",
            ErrorCode::BadValue, "layer_types", "[1]");
        row("4 x n_embd overflow", R"({"model_type":"gpt2","n_embd":2000000000})", ErrorCode::Overflow,
            "n_embd", "2000000000");
        row("absurd layer count",
            R"({"model_type":"gemma2","num_hidden_layers":4000000000,"sliding_window":4})",
            ErrorCode::Overflow, "num_hidden_layers", "4000000000");
        row("raw NUL in a key", QByteArray("{\"hidden\0size\":8}", 17), ErrorCode::BadValue, "config",
            QByteArray("\0", 1));
        row("raw tab in a value", "{\"model_type\":\"lla\tma\"}", ErrorCode::BadValue, "config", "\t");
        row("use_sliding_window string", R"({"sliding_window":4,"use_sliding_window":"yes"})",
            ErrorCode::BadValue, "use_sliding_window", "\"yes");
    }

    void hostile()
    {
        QFETCH(QByteArray, json);
        QFETCH(int, code);
        QFETCH(QString, field);
        QFETCH(QByteArray, needle);
        try {
            readConfig(json);
            QFAIL("accepted hostile config.json");
        } catch (const qs::FormatError& e) {
            QCOMPARE(errorCodeName(e.code()), errorCodeName(ErrorCode(code)));
            QCOMPARE(QString::fromStdString(e.field()), field);
            QVERIFY(e.offset().has_value());
            if (!needle.isEmpty())
                QCOMPARE(qint64(*e.offset()), qint64(json.indexOf(needle)));
            else
                QVERIFY(*e.offset() <= quint64(json.size()));
            QVERIFY(std::string(e.what()).find("config.json") != std::string::npos);
        }
    }

    void missingFile() { QVERIFY_THROWS_EXCEPTION(qs::Error, qs::readHfConfig("/nonexistent/config.json")); }
};

QTEST_APPLESS_MAIN(TestHfConfig)
#include "tst_hfconfig.moc"
