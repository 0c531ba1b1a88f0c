// Export refusals come with one-click fixes (issue 13 #8): applying the offered fixes makes the plan
// exportable, and the refusal counts problems and tensors separately.
#include "core/plan/export.h"
#include "core/plan/exportfix.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"

#include <QTest>

namespace {

const char* kLlama = R"({"model_type":"llama","hidden_size":256,"intermediate_size":512,"num_hidden_layers":4,
 "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":1024,"torch_dtype":"bfloat16"})";

std::vector<qs::ExportProblem> problemsOf(const qs::Plan& plan, qs::ExportTarget target)
{
    try {
        qs::exportPlan(plan, target);
    } catch (const qs::ExportError& e) {
        return e.problems();
    }
    return {};
}

} // namespace

class TestExportFix : public QObject {
    Q_OBJECT
private slots:
    void countsProblemsAndTensors()
    {
        const std::vector<qs::ExportProblem> problems{
            {"a", "Q4_K", "x"}, {"a", "Q4_K", "y"}, {"b", "Q4_K", "x"}};
        QCOMPARE(qs::describeProblemCount(problems), std::string("3 problems across 2 tensors"));
        QCOMPARE(qs::describeProblemCount({{"a", "Q4_K", "x"}}), std::string("1 problem across 1 tensor"));
    }

    void fixesMakeThePlanExportable()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        // INT4 everywhere, embedding and head included, and block 1's v_proj at INT8: GPTQModel and
        // compressed-tensors refuse the embedding (and GPTQModel the head) and the mixed q/k/v of block 1.
        qs::Plan p;
        for (const auto& t : l.tensors)
            if (t.shape.size() == 2)
                p.assign(t.name, "INT4-g128-asym");
        p.assign("model.layers.1.self_attn.v_proj.weight", "INT8-ch-sym");
        for (auto target : {qs::ExportTarget::GptqModel, qs::ExportTarget::CompressedTensors}) {
            const auto problems = problemsOf(p, target);
            QVERIFY(!problems.empty());
            const auto fixes = qs::exportFixes(p, l, problems);
            QCOMPARE(fixes.size(), size_t(2));
            // 16 bits for the embedding (stored BF16).
            QCOMPARE(fixes[0].assignments.at("model.embed_tokens.weight"), std::string("BF16"));
            for (const auto& [t, f] : fixes[0].assignments)
                QCOMPARE(f, std::string("BF16"));
            // One group raised to its most precise member.
            QCOMPARE(fixes[1].assignments.size(), size_t(3));
            QCOMPARE(fixes[1].assignments.at("model.layers.1.self_attn.q_proj.weight"), std::string("INT8-ch-sym"));
            QCOMPARE(fixes[1].assignments.at("model.layers.1.self_attn.k_proj.weight"), std::string("INT8-ch-sym"));
            qs::Plan fixed = p;
            for (const auto& f : fixes)
                fixed = qs::applyFix(fixed, f);
            QVERIFY(problemsOf(fixed, target).empty());
        }
    }

    void noFixForWhatCannotBeFixedMechanically()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        qs::Plan p;
        p.assign("model.layers.0.mlp.down_proj.weight", "Q4_K");
        const auto problems = problemsOf(p, qs::ExportTarget::GptqModel);
        QCOMPARE(problems.size(), size_t(1));
        QVERIFY(qs::exportFixes(p, l, problems).empty());
    }
};

QTEST_APPLESS_MAIN(TestExportFix)
#include "tst_exportfix.moc"
