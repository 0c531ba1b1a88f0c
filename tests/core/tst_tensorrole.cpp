// Tensor roles: one table row per naming convention, plus the role-name round trip and the real files.
#include "core/io/gguf.h"
#include "core/io/safetensors.h"
#include "core/model/tensorrole.h"

#include <QTest>
#include <filesystem>
#include <map>

class TestTensorRole : public QObject {
    Q_OBJECT
private slots:
    void classify_data()
    {
        QTest::addColumn<QString>("name");
        QTest::addColumn<int>("rank");
        QTest::addColumn<QString>("role");
        QTest::addColumn<int>("block");
        QTest::addColumn<int>("expert");

        auto row = [](const char* name, const char* role, int block = -1, int expert = -1, int rank = 2) {
            QTest::newRow(name) << QString(name) << rank << QString(role) << block << expert;
        };
        // Llama / Mistral / Qwen2 (Hugging Face)
        row("model.embed_tokens.weight", "embedding");
        row("model.layers.0.self_attn.q_proj.weight", "attn_q", 0);
        row("model.layers.1.self_attn.k_proj.weight", "attn_k", 1);
        row("model.layers.2.self_attn.v_proj.weight", "attn_v", 2);
        row("model.layers.31.self_attn.o_proj.weight", "attn_out", 31);
        row("model.layers.3.mlp.gate_proj.weight", "mlp_gate", 3);
        row("model.layers.3.mlp.up_proj.weight", "mlp_up", 3);
        row("model.layers.3.mlp.down_proj.weight", "mlp_down", 3);
        row("model.layers.4.input_layernorm.weight", "norm", 4, -1, 1);
        row("model.layers.4.post_attention_layernorm.weight", "norm", 4, -1, 1);
        row("model.norm.weight", "norm", -1, -1, 1);
        row("lm_head.weight", "output_head");
        row("model.layers.5.self_attn.q_proj.bias", "bias", 5, -1, 1);   // Qwen2 has q/k/v biases
        row("model.layers.5.self_attn.q_norm.weight", "norm", 5, -1, 1); // Qwen3
        // Gemma-2 / Gemma-3 (incl. the multimodal language_model prefix)
        row("model.layers.6.pre_feedforward_layernorm.weight", "norm", 6, -1, 1);
        row("model.layers.6.post_feedforward_layernorm.weight", "norm", 6, -1, 1);
        row("language_model.model.layers.7.mlp.gate_proj.weight", "mlp_gate", 7);
        row("language_model.model.embed_tokens.weight", "embedding");
        row("vision_tower.vision_model.embeddings.patch_embedding.weight", "conv", -1, -1, 4);
        // Phi-3: fused projections
        row("model.layers.8.self_attn.qkv_proj.weight", "attn_qkv", 8);
        row("model.layers.8.mlp.gate_up_proj.weight", "mlp_gate_up", 8);
        // Phi-2
        row("model.layers.9.self_attn.dense.weight", "attn_out", 9);
        row("model.layers.9.mlp.fc1.weight", "mlp_up", 9);
        row("model.layers.9.mlp.fc2.weight", "mlp_down", 9);
        row("model.final_layernorm.weight", "norm", -1, -1, 1);
        // GPT-2
        row("transformer.wte.weight", "embedding");
        row("transformer.wpe.weight", "position_embedding");
        row("transformer.h.0.ln_1.weight", "norm", 0, -1, 1);
        row("transformer.h.0.ln_1.bias", "bias", 0, -1, 1);
        row("transformer.h.0.attn.c_attn.weight", "attn_qkv", 0);
        row("transformer.h.0.attn.c_attn.bias", "bias", 0, -1, 1);
        row("transformer.h.0.attn.c_proj.weight", "attn_out", 0);
        row("transformer.h.11.ln_2.weight", "norm", 11, -1, 1);
        row("transformer.h.11.mlp.c_fc.weight", "mlp_up", 11);
        row("transformer.h.11.mlp.c_proj.weight", "mlp_down", 11);
        row("transformer.h.11.mlp.c_proj.bias", "bias", 11, -1, 1);
        row("transformer.ln_f.weight", "norm", -1, -1, 1);
        row("h.3.attn.c_attn.weight", "attn_qkv", 3); // gpt2 checkpoints without the transformer. prefix
        // Mixtral
        row("model.layers.1.block_sparse_moe.gate.weight", "moe_router", 1);
        row("model.layers.1.block_sparse_moe.experts.7.w1.weight", "moe_expert_gate", 1, 7);
        row("model.layers.1.block_sparse_moe.experts.7.w3.weight", "moe_expert_up", 1, 7);
        row("model.layers.1.block_sparse_moe.experts.0.w2.weight", "moe_expert_down", 1, 0);
        // Qwen2-MoE / DeepSeek
        row("model.layers.2.mlp.gate.weight", "moe_router", 2);
        row("model.layers.2.mlp.experts.59.gate_proj.weight", "moe_expert_gate", 2, 59);
        row("model.layers.2.mlp.experts.12.up_proj.weight", "moe_expert_up", 2, 12);
        row("model.layers.2.mlp.experts.3.down_proj.weight", "moe_expert_down", 2, 3);
        row("model.layers.2.mlp.shared_expert.gate_proj.weight", "moe_shared_expert", 2);
        row("model.layers.2.mlp.shared_expert.down_proj.weight", "moe_shared_expert", 2);
        row("model.layers.2.mlp.shared_expert_gate.weight", "moe_router", 2);
        row("model.layers.3.mlp.shared_experts.up_proj.weight", "moe_shared_expert", 3);
        row("model.layers.3.self_attn.q_a_proj.weight", "attn_q", 3);
        row("model.layers.3.self_attn.kv_a_proj_with_mqa.weight", "attn_qkv", 3);
        row("model.layers.3.self_attn.kv_a_layernorm.weight", "norm", 3, -1, 1);
        row("model.layers.3.mlp.experts.3.down_proj.weight_scale_inv", "other", 3, 3); // FP8 block scales
        // Meta's original Llama names
        row("tok_embeddings.weight", "embedding");
        row("layers.2.attention.wq.weight", "attn_q", 2);
        row("layers.2.attention.wo.weight", "attn_out", 2);
        row("layers.2.feed_forward.w1.weight", "mlp_gate", 2);
        row("layers.2.feed_forward.w3.weight", "mlp_up", 2);
        row("layers.2.feed_forward.w2.weight", "mlp_down", 2);
        row("layers.2.attention_norm.weight", "norm", 2, -1, 1);
        // GGUF
        row("token_embd.weight", "embedding");
        row("token_embd_norm.weight", "norm", -1, -1, 1);
        row("position_embd.weight", "position_embedding");
        row("output.weight", "output_head");
        row("output_norm.weight", "norm", -1, -1, 1);
        row("output_norm.bias", "bias", -1, -1, 1);
        row("blk.0.attn_q.weight", "attn_q", 0);
        row("blk.0.attn_k.weight", "attn_k", 0);
        row("blk.0.attn_v.weight", "attn_v", 0);
        row("blk.10.attn_qkv.weight", "attn_qkv", 10);
        row("blk.10.attn_qkv.bias", "bias", 10, -1, 1);
        row("blk.0.attn_output.weight", "attn_out", 0);
        row("blk.0.attn_norm.weight", "norm", 0, -1, 1);
        row("blk.0.attn_q_norm.weight", "norm", 0, -1, 1);
        row("blk.1.ffn_norm.weight", "norm", 1, -1, 1);
        row("blk.1.post_ffw_norm.weight", "norm", 1, -1, 1);
        row("blk.1.ffn_gate.weight", "mlp_gate", 1);
        row("blk.1.ffn_up.weight", "mlp_up", 1);
        row("blk.1.ffn_down.weight", "mlp_down", 1);
        row("blk.4.ffn_gate_inp.weight", "moe_router", 4);
        row("blk.4.ffn_gate_exps.weight", "moe_expert_gate", 4, -1, 3);
        row("blk.4.ffn_up_exps.weight", "moe_expert_up", 4, -1, 3);
        row("blk.4.ffn_down_exps.weight", "moe_expert_down", 4, -1, 3);
        row("blk.4.ffn_gate_shexp.weight", "moe_shared_expert", 4);
        row("blk.4.ffn_up_shexp.weight", "moe_shared_expert", 4);
        row("blk.4.ffn_down_shexp.weight", "moe_shared_expert", 4);
        row("blk.4.ffn_gate_inp_shexp.weight", "moe_router", 4);
        row("rope_freqs.weight", "other", -1, -1, 1);
        // Convolutions (by name and by rank), PaddlePaddle and BERT names
        row("conv2d_3.w_0", "conv", -1, -1, 4);
        row("conv2d_3.b_0", "bias", -1, -1, 1);
        row("batch_norm2d_148.w_1", "norm", -1, -1, 1);
        row("backbone.stem.0.weight", "conv", -1, -1, 4);
        row("model.layers.0.mamba.conv1d.weight", "conv", 0, -1, 3);
        row("linear_12.w_0", "other");
        row("bert.encoder.layer.3.attention.self.query.weight", "attn_q", 3);
        row("bert.encoder.layer.3.attention.self.value.weight", "attn_v", 3);
        row("bert.encoder.layer.3.attention.output.dense.weight", "attn_out", 3);
        row("bert.encoder.layer.3.intermediate.dense.weight", "mlp_up", 3);
        row("bert.encoder.layer.3.output.dense.weight", "mlp_down", 3);
        row("bert.encoder.layer.3.output.LayerNorm.weight", "norm", 3, -1, 1);
        // Odd input
        row("", "other", -1, -1, 0);
        row("...", "other", -1, -1, 0);
        row("layers.99999999999.q_proj.weight", "attn_q", -1);
        row("weight", "other", -1, -1, 0);
    }

    void classify()
    {
        QFETCH(QString, name);
        QFETCH(int, rank);
        QFETCH(int, block);
        QFETCH(int, expert);
        const std::string n = name.toStdString();
        const auto info = qs::classifyTensor(n, static_cast<size_t>(rank));
        QTEST(QString(qs::roleName(info.role)), "role");
        QCOMPARE(info.block, block);
        QCOMPARE(info.expert, expert);
    }

    void names()
    {
        const std::map<qs::TensorRole, const char*> expected = {
            {qs::TensorRole::Embedding, "embedding"},
            {qs::TensorRole::AttnQ, "attn_q"},
            {qs::TensorRole::AttnK, "attn_k"},
            {qs::TensorRole::AttnV, "attn_v"},
            {qs::TensorRole::AttnQKV, "attn_qkv"},
            {qs::TensorRole::AttnOut, "attn_out"},
            {qs::TensorRole::MlpGate, "mlp_gate"},
            {qs::TensorRole::MlpUp, "mlp_up"},
            {qs::TensorRole::MlpGateUp, "mlp_gate_up"},
            {qs::TensorRole::MlpDown, "mlp_down"},
            {qs::TensorRole::MoeRouter, "moe_router"},
            {qs::TensorRole::MoeExpertGate, "moe_expert_gate"},
            {qs::TensorRole::MoeExpertUp, "moe_expert_up"},
            {qs::TensorRole::MoeExpertDown, "moe_expert_down"},
            {qs::TensorRole::MoeSharedExpert, "moe_shared_expert"},
            {qs::TensorRole::Norm, "norm"},
            {qs::TensorRole::OutputHead, "output_head"},
            {qs::TensorRole::Conv, "conv"},
            {qs::TensorRole::PositionEmbedding, "position_embedding"},
            {qs::TensorRole::Bias, "bias"},
            {qs::TensorRole::Other, "other"},
        };
        QCOMPARE(expected.size(), size_t(qs::TensorRole::Count));
        for (const auto& [role, name] : expected) {
            QCOMPARE(qs::roleName(role), name);
            qs::TensorRole back = qs::TensorRole::Count;
            QVERIFY(qs::roleFromName(name, &back));
            QCOMPARE(back, role);
        }
        qs::TensorRole untouched = qs::TensorRole::Norm;
        QVERIFY(!qs::roleFromName("attn", &untouched));
        QVERIFY(!qs::roleFromName("", &untouched));
        QVERIFY(!qs::roleFromName("Embedding", &untouched));
        QCOMPARE(untouched, qs::TensorRole::Norm);
        QCOMPARE(qs::roleName(qs::TensorRole::Count), "other");
    }

    void quantizable()
    {
        using R = qs::TensorRole;
        for (R r : {R::Embedding, R::AttnQ, R::AttnK, R::AttnV, R::AttnQKV, R::AttnOut, R::MlpGate, R::MlpUp,
                    R::MlpGateUp, R::MlpDown, R::MoeExpertGate, R::MoeExpertUp, R::MoeExpertDown,
                    R::MoeSharedExpert, R::OutputHead})
            QVERIFY2(qs::roleIsQuantizable(r), qs::roleName(r));
        for (R r : {R::MoeRouter, R::Norm, R::Conv, R::PositionEmbedding, R::Bias, R::Other})
            QVERIFY2(!qs::roleIsQuantizable(r), qs::roleName(r));
    }

    void realFiles()
    {
        // Same model, two naming conventions: the role histograms per block agree.
        const std::filesystem::path dir = std::filesystem::path(QS_SAMPLE_DIR) / "stories260K";
        const auto hf = qs::loadSafetensors(dir / "hf-f32" / "model.safetensors", nullptr);
        const auto gguf = qs::loadGguf(dir / "stories260K.gguf", nullptr);
        auto histogram = [](const qs::Model& m) {
            std::map<std::pair<int, std::string>, int> h;
            for (const auto& t : m.tensors())
                ++h[{t.role.block, qs::roleName(t.role.role)}];
            return h;
        };
        const auto h = histogram(*hf);
        QCOMPARE(h, histogram(*gguf));
        QCOMPARE(h.at({-1, "embedding"}), 1);
        QCOMPARE(h.at({-1, "output_head"}), 1);
        QCOMPARE(h.at({-1, "norm"}), 1);
        for (int b = 0; b < 5; ++b)
            for (const char* r : {"attn_q", "attn_k", "attn_v", "attn_out", "mlp_gate", "mlp_up", "mlp_down"})
                QCOMPARE(h.at({b, r}), 1);
        QVERIFY(!h.count({-1, "other"}));

        const auto ppocr =
            qs::loadSafetensors(std::filesystem::path(QS_TEST_DATA) / "ppocr" / "model.safetensors", nullptr);
        std::map<std::string, int> roles;
        for (const auto& t : ppocr->tensors())
            ++roles[qs::roleName(t.role.role)];
        int convs = 0, biases = 0;
        for (const auto& t : ppocr->tensors()) {
            convs += t.shape.size() == 4;
            biases += t.name.ends_with(".b_0");
        }
        QVERIFY(convs > 0);
        QCOMPARE(roles["conv"], convs);
        QCOMPARE(roles["bias"], biases);
    }
};

QTEST_APPLESS_MAIN(TestTensorRole)
#include "tst_tensorrole.moc"
