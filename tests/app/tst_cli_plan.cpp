// The plan-related CLI commands (gpus, estimate, plan, export) run as the real executable.
#include "app/cli_runner.h"
#include "core/plan/planio.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>

namespace {

using Run = CliRun;

Run cli(const QStringList& args, const QProcessEnvironment& env = QProcessEnvironment::systemEnvironment())
{
    return runQuantscopeCli(args, env);
}

QJsonObject json(const Run& r)
{
    return QJsonDocument::fromJson(r.out).object();
}

const char* kLlama3_8B = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,
 "intermediate_size":14336,"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,
 "vocab_size":128256,"max_position_embeddings":8192,"tie_word_embeddings":false,"torch_dtype":"bfloat16"})";

} // namespace

class TestCliPlan : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString m_config;

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_config = m_dir.filePath(QStringLiteral("config.json"));
        QFile f(m_config);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(kLlama3_8B);
    }

    void gpusJson()
    {
        const Run r = cli({QStringLiteral("gpus"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto gpus = json(r).value(QStringLiteral("gpus")).toArray();
        QVERIFY(gpus.size() >= 30);
        bool found = false;
        for (const auto& g : gpus) {
            const auto o = g.toObject();
            if (o.value(QStringLiteral("id")).toString() == QLatin1String("h100-sxm")) {
                found = true;
                QCOMPARE(o.value(QStringLiteral("memory_bytes")).toInteger(), qint64(80) << 30);
                QCOMPARE(o.value(QStringLiteral("bandwidth_gb_s")).toDouble(), 3350.0);
            }
        }
        QVERIFY(found);
    }

    void userCatalogueExtends()
    {
        // A user file in the config dir adds devices (XDG_CONFIG_HOME points QStandardPaths at our dir).
        QTemporaryDir home;
        QDir().mkpath(home.filePath(QStringLiteral("quantscope")));
        QFile f(home.filePath(QStringLiteral("quantscope/gpus.json")));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(R"({"version":1,"gpus":[{"id":"lab-card","name":"Lab card","kind":"datacenter",
                    "memory_bytes":1073741824,"bandwidth_gb_s":100}]})");
        f.close();
        auto env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("XDG_CONFIG_HOME"), home.path());
        const Run r = cli({QStringLiteral("estimate"), m_config, QStringLiteral("--gpu"),
                           QStringLiteral("lab-card"), QStringLiteral("--json")},
                          env);
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r).value(QStringLiteral("gpu_bytes")).toInteger(), qint64(1) << 30);
        QCOMPARE(json(r).value(QStringLiteral("fits")).toBool(), false);
    }

    void estimateFromConfig()
    {
        const Run r = cli({QStringLiteral("estimate"), QStringLiteral("--config"), m_config,
                           QStringLiteral("--gpu"), QStringLiteral("rtx-4090"), QStringLiteral("--ctx"),
                           QStringLiteral("8192"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto o = json(r);
        // 8,030,261,248 parameters in BF16; 131072 bytes of F16 KV per token.
        QCOMPARE(o.value(QStringLiteral("parameters")).toInteger(), qint64(8030261248));
        // llama.cpp keeps the untied token embedding (128256 x 4096 BF16) in host memory.
        QCOMPARE(o.value(QStringLiteral("weights_bytes")).toInteger(),
                 qint64(8030261248) * 2 - qint64(128256) * 4096 * 2);
        QCOMPARE(o.value(QStringLiteral("host_weights_bytes")).toInteger(), qint64(128256) * 4096 * 2);
        QCOMPARE(o.value(QStringLiteral("kv_bytes_per_token")).toInteger(), qint64(131072));
        QCOMPARE(o.value(QStringLiteral("kv_cache_bytes")).toInteger(), qint64(1) << 30);
        const qint64 total = o.value(QStringLiteral("total_bytes")).toInteger();
        QCOMPARE(total, o.value(QStringLiteral("weights_bytes")).toInteger() +
                            o.value(QStringLiteral("kv_cache_bytes")).toInteger() +
                            o.value(QStringLiteral("overhead_bytes")).toInteger());
        // The RTX 4090's usable memory as nvidia-smi reports it: 24,564 MiB.
        QCOMPARE(o.value(QStringLiteral("gpu_bytes")).toInteger(), qint64(24564) << 20);
        QVERIFY(o.value(QStringLiteral("gpu_memory_source")).toString().contains(QStringLiteral("nvidia-smi")));
        QCOMPARE(o.value(QStringLiteral("fits")).toBool(), true);
        QCOMPARE(o.value(QStringLiteral("headroom_bytes")).toInteger(), (qint64(24564) << 20) - total);
        QCOMPARE(o.value(QStringLiteral("max_context")).toInteger(), qint64(8192));
        QCOMPARE(o.value(QStringLiteral("gpus_needed")).toInteger(), qint64(1));
        QVERIFY(o.value(QStringLiteral("max_decode_tokens_per_s")).toDouble() > 50);
        QVERIFY(o.value(QStringLiteral("max_decode_tokens_per_s")).toDouble() < 70);

        // Q8_0 KV: 34 bytes per 32 values.
        const Run q = cli({QStringLiteral("estimate"), m_config, QStringLiteral("--gpu"),
                           QStringLiteral("l4"), QStringLiteral("--ctx"), QStringLiteral("1000"),
                           QStringLiteral("--kv-dtype"), QStringLiteral("q8_0"), QStringLiteral("--batch"),
                           QStringLiteral("2"), QStringLiteral("--json")});
        QCOMPARE(q.exitCode, 0);
        QCOMPARE(json(q).value(QStringLiteral("kv_cache_bytes")).toInteger(),
                 qint64(2) * 1000 * 32 * 2 * 32 * 34);
    }

    void estimateSeveralGpus()
    {
        const Run r = cli({QStringLiteral("estimate"), m_config, QStringLiteral("--gpu"),
                           QStringLiteral("rtx-3080-10"), QStringLiteral("--gpu"), QStringLiteral("h100"),
                           QStringLiteral("--runtime"), QStringLiteral("vllm"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto per = json(r).value(QStringLiteral("per_gpu")).toArray();
        QCOMPARE(per.size(), 2);
        QCOMPARE(per[0].toObject().value(QStringLiteral("fits")).toBool(), false);
        // At utilisation 0.9 a 10 GB card keeps 1 GB beside vLLM's budget, less than the 1.5 GiB of CUDA
        // context and NCCL set-up that tensor parallelism needs there: no number of them runs the model.
        QCOMPARE(per[0].toObject().value(QStringLiteral("gpus_needed")).toInteger(), qint64(0));
        QCOMPARE(per[1].toObject().value(QStringLiteral("fits")).toBool(), true);
        // vLLM may use 90% of the card's usable 81,559 MiB (nvidia-smi on an H100 80GB HBM3).
        QCOMPARE(per[1].toObject().value(QStringLiteral("gpu_bytes")).toInteger(),
                 qint64(std::floor(double(81559ll << 20) * 0.9)));
    }

    void planPresetAndEstimate()
    {
        const QString out = m_dir.filePath(QStringLiteral("q4km.json"));
        Run r =
            cli({QStringLiteral("plan"), m_config, QStringLiteral("--preset"),
                 QStringLiteral("llama.cpp-Q4_K_M"), QStringLiteral("--out"), out, QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto o = json(r);
        QCOMPARE(o.value(QStringLiteral("preset")).toString(), QStringLiteral("llama.cpp-Q4_K_M"));
        // 193 tensors in Q4_K, 33 in Q6_K (16 attn_v, 16 ffn_down, the head).
        QCOMPARE(o.value(QStringLiteral("tensors_per_format"))
                     .toObject()
                     .value(QStringLiteral("Q6_K"))
                     .toInteger(),
                 33);
        QCOMPARE(o.value(QStringLiteral("tensors_per_format"))
                     .toObject()
                     .value(QStringLiteral("Q4_K"))
                     .toInteger(),
                 193);
        const qint64 weights = o.value(QStringLiteral("weights_bytes")).toInteger();
        QVERIFY(std::abs(double(weights) / (1ll << 30) - 4.58) < 0.01); // llama-quantize: 4.58G
        QFile f(out);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const auto planDoc = QJsonDocument::fromJson(f.readAll()).object();
        QCOMPARE(planDoc.value(QStringLiteral("version")).toInt(), 1);
        QCOMPARE(planDoc.value(QStringLiteral("format")).toString(), QStringLiteral("quantscope-plan"));
        QCOMPARE(planDoc.value(QStringLiteral("assignments")).toObject().size(), 226);

        // estimate --plan sizes the weights as the plan stores them.
        r = cli({QStringLiteral("estimate"), m_config, QStringLiteral("--plan"), out, QStringLiteral("--gpu"),
                 QStringLiteral("rtx-3080-10"), QStringLiteral("--ctx"), QStringLiteral("8192"),
                 QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r).value(QStringLiteral("model_weights_bytes")).toInteger(), weights);
        // On the GPU: all but the Q4_K token embedding, 128256 x 4096 / 256 x 144 bytes (host memory).
        QCOMPARE(json(r).value(QStringLiteral("weights_bytes")).toInteger(),
                 weights - qint64(128256) * 4096 / 256 * 144);
        QCOMPARE(json(r).value(QStringLiteral("fits")).toBool(), true);
    }

    void planRulesAndBudget()
    {
        const QString rules = m_dir.filePath(QStringLiteral("rules.txt"));
        QFile f(rules);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("# keep the ends precise\nrole:output_head=Q8_0\n^model\\.layers\\.0\\.=Q6_K\nmlp=Q3_K\n");
        f.close();
        Run r = cli(
            {QStringLiteral("plan"), m_config, QStringLiteral("--rules"), rules, QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto a = json(r).value(QStringLiteral("assignments")).toObject();
        QCOMPARE(a.value(QStringLiteral("lm_head.weight")).toString(), QStringLiteral("Q8_0"));
        QCOMPARE(a.value(QStringLiteral("model.layers.0.mlp.up_proj.weight")).toString(),
                 QStringLiteral("Q6_K"));
        QCOMPARE(a.value(QStringLiteral("model.layers.5.mlp.up_proj.weight")).toString(),
                 QStringLiteral("Q3_K"));
        QCOMPARE(a.value(QStringLiteral("model.layers.5.self_attn.q_proj.weight")).toString(),
                 QStringLiteral("BF16"));

        // Fit to 5 GB: the result is within budget and reports its bound.
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--budget"), QStringLiteral("5000000000"),
                 QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto b = json(r).value(QStringLiteral("budget")).toObject();
        QVERIFY(b.value(QStringLiteral("weights_bytes")).toInteger() <= 5000000000);
        QVERIFY(json(r).value(QStringLiteral("weights_bytes")).toInteger() <= 5000000000);
        QVERIFY(b.value(QStringLiteral("lower_bound")).toDouble() <=
                b.value(QStringLiteral("error")).toDouble());
        // --fused keeps q/k/v and gate/up together: no fused-mismatch issue in the result.
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--budget"), QStringLiteral("5000000000"),
                 QStringLiteral("--fused"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r).value(QStringLiteral("issues")).toArray().size(), 0);
        const auto fa = json(r).value(QStringLiteral("assignments")).toObject();
        for (int i = 0; i < 32; ++i) {
            const QString p = QStringLiteral("model.layers.%1.").arg(i);
            QCOMPARE(fa.value(p + QStringLiteral("self_attn.k_proj.weight")),
                     fa.value(p + QStringLiteral("self_attn.q_proj.weight")));
            QCOMPARE(fa.value(p + QStringLiteral("self_attn.v_proj.weight")),
                     fa.value(p + QStringLiteral("self_attn.q_proj.weight")));
            QCOMPARE(fa.value(p + QStringLiteral("mlp.up_proj.weight")),
                     fa.value(p + QStringLiteral("mlp.gate_proj.weight")));
        }
        // Too small a budget is refused.
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--budget"), QStringLiteral("1000")});
        QCOMPARE(r.exitCode, 1);
        // A GPU budget: what the cache and runtime leave on a 10 GB card.
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--gpu"), QStringLiteral("rtx-3080-10"),
                 QStringLiteral("--ctx"), QStringLiteral("8192"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto g = json(r).value(QStringLiteral("budget")).toObject();
        QVERIFY(g.value(QStringLiteral("budget_bytes")).toInteger() < (10ll << 30) - (1ll << 30));
    }

    void planGpuWithKvType()
    {
        // --kv-type auto: one alternative per llama.cpp cache type, finest first; the coarser caches leave the
        // weights more room (at 8192 tokens x 32 layers, f16 -> q8_0 frees 8192 x 32 x (4096 - 2176) B =
        // 480 MiB of cache; the flash-attention F16 view of a quantized cache, 8192 x 1024 x 4 B = 32 MiB,
        // may take some of it back).
        Run r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--gpu"), QStringLiteral("rtx-3080-10"),
                     QStringLiteral("--ctx"), QStringLiteral("8192"), QStringLiteral("--kv-type"),
                     QStringLiteral("auto"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        auto b = json(r).value(QStringLiteral("budget")).toObject();
        const auto alts = b.value(QStringLiteral("alternatives")).toArray();
        QCOMPARE(alts.size(), 3);
        const QStringList kinds = {QStringLiteral("f16"), QStringLiteral("q8_0"), QStringLiteral("q4_0")};
        int chosen = -1;
        for (int i = 0; i < 3; ++i) {
            const auto a = alts[i].toObject();
            QCOMPARE(a.value(QStringLiteral("kv_type")).toString(), kinds[i]);
            QVERIFY(a.value(QStringLiteral("fits")).toBool());
            QVERIFY(a.value(QStringLiteral("weights_bytes")).toInteger() <=
                    a.value(QStringLiteral("weight_budget_bytes")).toInteger());
            QVERIFY(a.value(QStringLiteral("total_bytes")).toInteger() <= 10ll << 30);
            QVERIFY(a.value(QStringLiteral("max_context")).toInteger() >= 8192);
            if (a.value(QStringLiteral("chosen")).toBool())
                chosen = i;
        }
        QVERIFY(chosen >= 0);
        QCOMPARE(b.value(QStringLiteral("kv_type")).toString(), kinds[chosen]);
        const qint64 f16 = alts[0].toObject().value(QStringLiteral("weight_budget_bytes")).toInteger();
        const qint64 q8 = alts[1].toObject().value(QStringLiteral("weight_budget_bytes")).toInteger();
        QVERIFY(q8 - f16 <= 480ll << 20);
        QVERIFY(q8 - f16 >= (480ll - 32) << 20);
        QVERIFY(alts[2].toObject().value(QStringLiteral("weight_budget_bytes")).toInteger() > q8);
        // The error never rises with a coarser cache (more room for the weights).
        QVERIFY(alts[1].toObject().value(QStringLiteral("error")).toDouble() <=
                alts[0].toObject().value(QStringLiteral("error")).toDouble());
        // A fixed type: one alternative.
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--gpu"), QStringLiteral("rtx-3080-10"),
                 QStringLiteral("--ctx"), QStringLiteral("8192"), QStringLiteral("--kv-dtype"), QStringLiteral("q8_0"),
                 QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        b = json(r).value(QStringLiteral("budget")).toObject();
        QCOMPARE(b.value(QStringLiteral("alternatives")).toArray().size(), 1);
        QCOMPARE(b.value(QStringLiteral("weights_bytes")).toInteger(),
                 alts[1].toObject().value(QStringLiteral("weights_bytes")).toInteger());
        // A million tokens do not fit a 24 GB card with any cache (q4_0 alone: 10^6 x 32 x 2 x 576 B = 34 GiB):
        // exit 1, and the smallest changes: a shorter context, more GPUs.
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--gpu"), QStringLiteral("rtx-4090"),
                 QStringLiteral("--ctx"), QStringLiteral("1000000"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 1);
        const auto o = json(r);
        QCOMPARE(o.value(QStringLiteral("fits")).toBool(), false);
        const auto suggestions = o.value(QStringLiteral("budget")).toObject().value(QStringLiteral("suggestions")).toArray();
        bool context = false, gpus = false;
        for (const auto& v : suggestions) {
            const auto s = v.toObject();
            if (s.value(QStringLiteral("kind")).toString() == QLatin1String("context")) {
                context = true;
                // The longest that fits, capped at the model's trained context (8192 tokens).
                QCOMPARE(s.value(QStringLiteral("context")).toInteger(), 8192);
            }
            if (s.value(QStringLiteral("kind")).toString() == QLatin1String("gpus")) {
                gpus = true;
                QVERIFY(s.value(QStringLiteral("gpus")).toInteger() >= 2);
            }
        }
        QVERIFY(context);
        QVERIFY(gpus);
        // Quality mode: the longest context for an error the plan reaches.
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--gpu"), QStringLiteral("rtx-3080-10"),
                 QStringLiteral("--max-error"), QStringLiteral("1e30"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        b = json(r).value(QStringLiteral("budget")).toObject();
        QCOMPARE(b.value(QStringLiteral("mode")).toString(), QStringLiteral("quality"));
        QVERIFY(b.value(QStringLiteral("context")).toInteger() > 0);
    }

    void planSampleModel()
    {
        // The real stories260K sample: 172-wide ffn_down rows fit no 32-value block, so llama.cpp's fallback
        // chain ends at F16 for them, and the 64-wide head goes to Q8_0.
        const QString gguf = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        Run r = cli({QStringLiteral("plan"), gguf, QStringLiteral("--preset"), QStringLiteral("Q4_K_M"),
                     QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto a = json(r).value(QStringLiteral("assignments")).toObject();
        QCOMPARE(a.value(QStringLiteral("blk.0.ffn_down.weight")).toString(), QStringLiteral("F16"));
        QCOMPARE(a.value(QStringLiteral("output.weight")).toString(), QStringLiteral("Q8_0"));
        QCOMPARE(a.value(QStringLiteral("blk.2.attn_v.weight")).toString(),
                 QStringLiteral("Q8_0")); // Q6_K fallback
        QCOMPARE(a.value(QStringLiteral("blk.1.attn_v.weight")).toString(),
                 QStringLiteral("Q5_0")); // Q4_K fallback
        // all-Q4_K on it: no tensor can hold Q4_K (64- and 172-wide rows), so all 37 get the format they
        // are stored in (Q5_0, or F16 for the 172-wide ffn_down), each with a note; no issue is left.
        r = cli({QStringLiteral("plan"), gguf, QStringLiteral("--preset"), QStringLiteral("all-Q4_K"),
                 QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r).value(QStringLiteral("issues")).toArray().size(), 0);
        QCOMPARE(json(r).value(QStringLiteral("notes")).toArray().size(), 37);
        const auto q4 = json(r).value(QStringLiteral("assignments")).toObject();
        QCOMPARE(q4.value(QStringLiteral("blk.0.attn_q.weight")).toString(), QStringLiteral("Q5_0"));
        QCOMPARE(q4.value(QStringLiteral("blk.0.ffn_down.weight")).toString(), QStringLiteral("F16"));
        r = cli({QStringLiteral("plan"), gguf, QStringLiteral("--preset"), QStringLiteral("Q9_K_Z")});
        QCOMPARE(r.exitCode, 1);
    }

    // plan --method FORMAT=METHOD sets a tier's method, saved in the plan and printed; what the format
    // cannot take is refused naming the reason.
    void planTierMethods()
    {
        const QString out = m_dir.filePath(QStringLiteral("methods.json"));
        Run r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--preset"), QStringLiteral("all-INT4-g128-asym"),
                     QStringLiteral("--method"), QStringLiteral("INT4-g128-asym=gptq"), QStringLiteral("--method"),
                     QStringLiteral("Q8_0=awq"), QStringLiteral("--out"), out, QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto methods = json(r).value(QStringLiteral("tier_methods")).toObject();
        QCOMPARE(methods.size(), 2);
        QCOMPARE(methods.value(QStringLiteral("INT4-g128-asym")).toString(), QStringLiteral("gptq"));
        QCOMPARE(methods.value(QStringLiteral("Q8_0")).toString(), QStringLiteral("awq"));
        const qs::Plan saved = qs::loadPlan(out.toStdString());
        QCOMPARE(int(saved.methodOf("model.layers.3.mlp.down_proj.weight")), int(qs::QuantMethod::Gptq));
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--preset"), QStringLiteral("all-INT4-g128-asym"),
                 QStringLiteral("--method"), QStringLiteral("INT4-g128-asym=gptq")});
        QCOMPARE(r.exitCode, 0);
        QVERIFY2(r.out.contains("INT4-g128-asym   224 tensors (GPTQ)"), r.out.constData());
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--method"), QStringLiteral("BF16=gptq")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("not an integer format"), r.err.constData());
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--method"), QStringLiteral("Q4_K=gptq"),
                 QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0); // GPTQ rounds into Q4_K's blocks
        QCOMPARE(json(r).value(QStringLiteral("tier_methods")).toObject().value(QStringLiteral("Q4_K")).toString(),
                 QStringLiteral("gptq"));
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--method"), QStringLiteral("Q4_K")});
        QCOMPARE(r.exitCode, 1);
    }

    // plan --target: formats limited to what the target can express; a preset it cannot express is
    // refused (exit 1) naming the tensor and why; fused warnings only where the runtime fuses.
    void planForTarget()
    {
        const QString gguf = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        Run r = cli({QStringLiteral("plan"), gguf, QStringLiteral("--target"), QStringLiteral("gptqmodel"),
                     QStringLiteral("--preset"), QStringLiteral("llama.cpp-Q4_K_M")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("cannot be expressed for gptqmodel"));
        QVERIFY(r.err.contains("GPTQModel stores integer GPTQ weights only"));
        r = cli({QStringLiteral("plan"), gguf, QStringLiteral("--target"), QStringLiteral("onnx")});
        QCOMPARE(r.exitCode, 1);

        // all-Q8_0 for llama.cpp: the 172-wide ffn_down rows have no Q8_0 fallback in llama.cpp: F16.
        const QString plan = m_dir.filePath(QStringLiteral("q8-llamacpp.json"));
        r = cli({QStringLiteral("plan"), gguf, QStringLiteral("--target"), QStringLiteral("llamacpp"),
                 QStringLiteral("--preset"), QStringLiteral("all-Q8_0"), QStringLiteral("--out"), plan,
                 QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto o = json(r);
        QCOMPARE(o.value(QStringLiteral("target")).toString(), QStringLiteral("llamacpp"));
        QCOMPARE(o.value(QStringLiteral("assignments")).toObject().value(QStringLiteral("blk.3.ffn_down.weight")),
                 QJsonValue(QStringLiteral("F16")));
        QCOMPARE(o.value(QStringLiteral("notes")).toArray().size(), 5);
        QCOMPARE(o.value(QStringLiteral("weights_bytes")).toInteger(), qint64(364768)); // tst_plan_target
        r = cli({QStringLiteral("export"), plan, QStringLiteral("--to"), QStringLiteral("llamacpp")});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("ffn_down\\.weight$=f16\n"));
        QVERIFY(!r.err.contains("--output-tensor-type"));
        QVERIFY(!r.err.contains("--token-embedding-type"));

        // llama.cpp's own Q4_K_M on Llama-3-8B: no fused warnings for llama.cpp, 16 with --fused.
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--target"), QStringLiteral("llamacpp"),
                 QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r).value(QStringLiteral("issues")).toArray().size(), 0);
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--target"), QStringLiteral("llamacpp"),
                 QStringLiteral("--fused"), QStringLiteral("--json")});
        QCOMPARE(json(r).value(QStringLiteral("issues")).toArray().size(), 16);

        // A budget fit for compressed-tensors: integer/FP8 formats only, fused groups tied; its export works.
        const QString ct = m_dir.filePath(QStringLiteral("ct.json"));
        r = cli({QStringLiteral("plan"), m_config, QStringLiteral("--target"), QStringLiteral("compressed-tensors"),
                 QStringLiteral("--budget"), QStringLiteral("9000000000"), QStringLiteral("--out"), ct,
                 QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r).value(QStringLiteral("issues")).toArray().size(), 0);
        QVERIFY(json(r).value(QStringLiteral("weights_bytes")).toInteger() <= 9000000000ll);
        r = cli({QStringLiteral("export"), ct, QStringLiteral("--to"), QStringLiteral("compressed-tensors")});
        QCOMPARE(r.exitCode, 0);
        // estimate --plan: a compressed-tensors plan is run by vLLM (no host-resident embedding there).
        r = cli({QStringLiteral("estimate"), m_config, QStringLiteral("--plan"), ct, QStringLiteral("--gpu"),
                 QStringLiteral("h100"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r).value(QStringLiteral("runtime")).toString(), QStringLiteral("vllm"));
        QCOMPARE(json(r).value(QStringLiteral("host_weights_bytes")).toInteger(), qint64(0));
    }

    void planWithSensitivity()
    {
        // The sensitivity command's JSON drives the budget fit: the result is proven optimal on the sample.
        const QString model = QStringLiteral(QS_SAMPLE_DIR "/stories260K/hf-f32");
        Run r = cli({QStringLiteral("sensitivity"), model, QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const QString sens = m_dir.filePath(QStringLiteral("sens.json"));
        QFile f(sens);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(r.out);
        f.close();
        r = cli({QStringLiteral("plan"), model, QStringLiteral("--budget"), QStringLiteral("200000"),
                 QStringLiteral("--sensitivity"), sens, QStringLiteral("--curve"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto o = json(r);
        const auto b = o.value(QStringLiteral("budget")).toObject();
        QVERIFY(o.value(QStringLiteral("weights_bytes")).toInteger() <= 200000);
        QCOMPARE(b.value(QStringLiteral("optimal")).toBool(), true);
        QCOMPARE(b.value(QStringLiteral("gap")).toDouble(), 0.0);
        // The trade-off curve: sizes up, errors down; the chosen plan is no worse than the curve at its size.
        const auto curve = b.value(QStringLiteral("curve")).toArray();
        QVERIFY(curve.size() > 2);
        double bestOnCurve = 1e300;
        for (qsizetype i = 0; i < curve.size(); ++i) {
            const auto pt = curve[i].toArray();
            if (i > 0) {
                QVERIFY(pt[0].toInteger() > curve[i - 1].toArray()[0].toInteger());
                QVERIFY(pt[1].toDouble() < curve[i - 1].toArray()[1].toDouble());
            }
            if (pt[0].toInteger() <= 200000)
                bestOnCurve = std::min(bestOnCurve, pt[1].toDouble());
        }
        QVERIFY(b.value(QStringLiteral("error")).toDouble() <= bestOnCurve * (1 + 1e-12));
        // The error is the sum of the chosen cells' mse x rows x cols.
        QFile sf(sens);
        QVERIFY(sf.open(QIODevice::ReadOnly));
        const auto cells =
            QJsonDocument::fromJson(sf.readAll()).object().value(QStringLiteral("results")).toArray();
        const auto asg = o.value(QStringLiteral("assignments")).toObject();
        double total = 0;
        for (const auto& c : cells) {
            const auto cell = c.toObject();
            if (asg.value(cell.value(QStringLiteral("tensor")).toString()).toString() ==
                cell.value(QStringLiteral("format")).toString())
                total += cell.value(QStringLiteral("mse")).toDouble() *
                         cell.value(QStringLiteral("rows")).toDouble() *
                         cell.value(QStringLiteral("cols")).toDouble();
        }
        QVERIFY(std::abs(total - b.value(QStringLiteral("error")).toDouble()) <= 1e-9 * total);
    }

    void exportTargets()
    {
        const QString plan = m_dir.filePath(QStringLiteral("export-q4km.json"));
        QCOMPARE(cli({QStringLiteral("plan"), m_config, QStringLiteral("--preset"), QStringLiteral("Q4_K_M"),
                      QStringLiteral("--out"), plan})
                     .exitCode,
                 0);
        // llama.cpp: pattern=type lines on stdout, the llama-quantize command on stderr.
        Run r = cli({QStringLiteral("export"), plan, QStringLiteral("--to"), QStringLiteral("llamacpp")});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("^blk\\.\\d+\\.attn_q\\.weight$=q4_K\n"));
        QVERIFY(r.out.contains("^output\\.weight$=q6_K\n"));
        QVERIFY(r.err.contains("llama-quantize --tensor-type-file"));
        // --out writes the file.
        const QString out = m_dir.filePath(QStringLiteral("types.txt"));
        r = cli({QStringLiteral("export"), plan, QStringLiteral("--to"), QStringLiteral("llamacpp"),
                 QStringLiteral("--out"), out});
        QCOMPARE(r.exitCode, 0);
        QFile f(out);
        QVERIFY(f.open(QIODevice::ReadOnly));
        QCOMPARE(f.readAll().count('\n'), 11);
        // GPTQModel cannot express Q4_K: exit code 3 and every tensor named.
        r = cli({QStringLiteral("export"), plan, QStringLiteral("--to"), QStringLiteral("gptqmodel")});
        QCOMPARE(r.exitCode, 3);
        QVERIFY(r.err.contains("model.layers.7.mlp.up_proj.weight (Q4_K)"));
        QVERIFY(r.out.isEmpty());

        // An integer plan goes to the vLLM-side tools.
        const QString intPlan = m_dir.filePath(QStringLiteral("int.json"));
        QCOMPARE(
            cli({QStringLiteral("plan"), m_config, QStringLiteral("--preset"),
                 QStringLiteral("keep-embeddings-8bit:INT4-g128-asym"), QStringLiteral("--out"), intPlan})
                .exitCode,
            0);
        r = cli({QStringLiteral("export"), intPlan, QStringLiteral("--to"), QStringLiteral("gptqmodel"),
                 QStringLiteral("--out"), m_dir.filePath(QStringLiteral("quantize_config.json"))});
        QCOMPARE(r.exitCode, 3); // the embedding is quantized: GPTQModel refuses
        QVERIFY(r.err.contains("model.embed_tokens.weight"));
        r = cli({QStringLiteral("export"), intPlan, QStringLiteral("--to"),
                 QStringLiteral("compressed-tensors")});
        QCOMPARE(r.exitCode, 3);
        const QString rules = m_dir.filePath(QStringLiteral("int-rules.txt"));
        QFile rf(rules);
        QVERIFY(rf.open(QIODevice::WriteOnly));
        rf.write("role:embedding=BF16\nrole:output_head=BF16\n.*=INT4-g128-asym\n");
        rf.close();
        QCOMPARE(cli({QStringLiteral("plan"), m_config, QStringLiteral("--rules"), rules,
                      QStringLiteral("--out"), intPlan})
                     .exitCode,
                 0);
        r = cli({QStringLiteral("export"), intPlan, QStringLiteral("--to"), QStringLiteral("gptqmodel")});
        QCOMPARE(r.exitCode, 0);
        const auto cfg = json(r);
        QCOMPARE(cfg.value(QStringLiteral("bits")).toInt(), 4);
        QCOMPARE(cfg.value(QStringLiteral("group_size")).toInt(), 128);
        QCOMPARE(cfg.value(QStringLiteral("dynamic")).toObject().size(), 0);
        r = cli({QStringLiteral("export"), intPlan, QStringLiteral("--to"),
                 QStringLiteral("compressed-tensors")});
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r)
                     .value(QStringLiteral("quantization_config"))
                     .toObject()
                     .value(QStringLiteral("ignore"))
                     .toArray(),
                 QJsonArray{QStringLiteral("lm_head")});
        r = cli({QStringLiteral("export"), intPlan, QStringLiteral("--to"), QStringLiteral("llmcompressor")});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("QuantizationModifier:"));
        QVERIFY(r.out.contains("group_size: 128"));
        r = cli({QStringLiteral("export"), intPlan, QStringLiteral("--to"), QStringLiteral("json")});
        QCOMPARE(r.exitCode, 0);
        QCOMPARE(json(r).value(QStringLiteral("version")).toInt(), 1);
        r = cli({QStringLiteral("export"), intPlan, QStringLiteral("--to"), QStringLiteral("onnx")});
        QCOMPARE(r.exitCode, 1);
        // A bad plan file is refused with the field named.
        QFile bad(m_dir.filePath(QStringLiteral("bad.json")));
        QVERIFY(bad.open(QIODevice::WriteOnly));
        bad.write(R"({"format":"quantscope-plan","version":7,"tiers":[],"assignments":{}})");
        bad.close();
        r = cli({QStringLiteral("export"), bad.fileName(), QStringLiteral("--to"), QStringLiteral("json")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("version"));
    }

    void estimateNonTransformer()
    {
        // PP-OCR's recognizer has no attention configuration: weights only, no KV cache, still an answer.
        const Run r =
            cli({QStringLiteral("estimate"), QStringLiteral(QS_TEST_DATA "/ppocr/model.safetensors"),
                 QStringLiteral("--gpu"), QStringLiteral("t4"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const auto o = json(r);
        QCOMPARE(o.value(QStringLiteral("kv_cache_bytes")).toInteger(), 0);
        QCOMPARE(o.value(QStringLiteral("kv_bytes_per_token")).toInteger(), 0);
        QVERIFY(o.value(QStringLiteral("weights_bytes")).toInteger() > 2000000 * 4); // 2.7M F32 parameters
        QCOMPARE(o.value(QStringLiteral("fits")).toBool(), true);
    }

    void estimateErrors()
    {
        Run r =
            cli({QStringLiteral("estimate"), m_config, QStringLiteral("--gpu"), QStringLiteral("voodoo5")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("voodoo5"));
        r = cli({QStringLiteral("estimate"), m_config});
        QCOMPARE(r.exitCode, 1);
        r = cli({QStringLiteral("estimate"), m_config, QStringLiteral("--gpu"), QStringLiteral("h100"),
                 QStringLiteral("--runtime"), QStringLiteral("vllm"), QStringLiteral("--kv-dtype"),
                 QStringLiteral("q4_0")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("q4_0"));
        r = cli({QStringLiteral("estimate"), m_dir.filePath(QStringLiteral("missing.json")),
                 QStringLiteral("--gpu"), QStringLiteral("h100")});
        QCOMPARE(r.exitCode, 1);
    }
};

QTEST_APPLESS_MAIN(TestCliPlan)
#include "tst_cli_plan.moc"
