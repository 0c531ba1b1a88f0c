// The rules editor (issue 13 #1): rules by role or regex, first match wins, a live preview of what each
// rule matches on the model, invalid rules refused with the reason, Apply as one undo step.
#include "core/plan/modellayout.h"
#include "widgets/plandocument.h"
#include "widgets/ruleseditor.h"

#include <QAbstractItemModelTester>
#include <QUndoStack>
#include <QtTest>

using namespace qs;

namespace {

// 4 blocks x 7 matrices + embedding + head = 30 plannable tensors (plus 9 norms).
const char* kLlama = R"({"model_type":"llama","hidden_size":256,"intermediate_size":512,"num_hidden_layers":4,
 "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":1024,"torch_dtype":"bfloat16"})";

} // namespace

class TestRulesEditor : public QObject {
    Q_OBJECT
private slots:
    void previewAndApply()
    {
        PlanDocument doc;
        doc.setLayout(layoutFromConfigJson(kLlama), QStringLiteral("all-Q4_K"));
        RulesDialog dialog(&doc);
        QAbstractItemModelTester tester(dialog.model(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        QCOMPARE(dialog.model()->rowCount(), 0); // the all-Q4_K preset has no rules

        RulesModel* m = dialog.model();
        m->addRule({PlanRule::Match::Role, "embedding", "BF16"});
        m->addRule({PlanRule::Match::Regex, "^model\\.layers\\.0\\.", "Q8_0"});
        m->addRule({PlanRule::Match::Role, "attn_v", "Q6_K"});
        // Counts: the embedding; all 7 matrices of block 0; attn_v of blocks 1-3 (block 0's went to rule 2).
        QCOMPARE(m->data(m->index(0, RulesModel::CountColumn)).toInt(), 1);
        QCOMPARE(m->data(m->index(1, RulesModel::CountColumn)).toInt(), 7);
        QCOMPARE(m->data(m->index(2, RulesModel::CountColumn)).toInt(), 3);
        QVERIFY2(dialog.status().startsWith(QStringLiteral("11 of 30 plannable tensors matched by a rule; 19 by none.")),
                 qPrintable(dialog.status()));
        QCOMPARE(dialog.preview(2), (QStringList{QStringLiteral("model.layers.1.self_attn.v_proj.weight → Q6_K"),
                                                 QStringLiteral("model.layers.2.self_attn.v_proj.weight → Q6_K"),
                                                 QStringLiteral("model.layers.3.self_attn.v_proj.weight → Q6_K")}));

        // First match wins: moving the attn_v rule up takes block 0's v_proj from the regex rule.
        QVERIFY(m->moveRule(2, -1));
        QCOMPARE(m->data(m->index(1, RulesModel::CountColumn)).toInt(), 4);
        QCOMPARE(m->data(m->index(2, RulesModel::CountColumn)).toInt(), 6);

        // Editing through the model: an invalid regex and a back-reference are refused with the reason.
        QVERIFY(m->setData(m->index(2, RulesModel::PatternColumn), QStringLiteral("(")));
        QVERIFY(dialog.status().contains(QStringLiteral("(")));
        const Plan before = doc.plan();
        QVERIFY(!dialog.apply());
        QVERIFY(doc.plan() == before);
        QCOMPARE(doc.undoStack()->count(), 0);
        QVERIFY(m->setData(m->index(2, RulesModel::PatternColumn), QStringLiteral("(a)\\1")));
        QVERIFY(!dialog.apply());
        QVERIFY(m->setData(m->index(2, RulesModel::PatternColumn), QStringLiteral("^model\\.layers\\.0\\.")));
        // An unknown format is not taken.
        QVERIFY(!m->setData(m->index(2, RulesModel::FormatColumn), QStringLiteral("Q7_K")));

        dialog.setUnmatched(QStringLiteral("stored"));
        QVERIFY(dialog.apply());
        QCOMPARE(doc.undoStack()->count(), 1);
        const Plan& p = doc.plan();
        QCOMPARE(p.formatOf("model.embed_tokens.weight").value_or(""), std::string("BF16"));
        QCOMPARE(p.formatOf("model.layers.0.self_attn.v_proj.weight").value_or(""), std::string("Q6_K"));
        QCOMPARE(p.formatOf("model.layers.0.mlp.down_proj.weight").value_or(""), std::string("Q8_0"));
        QCOMPARE(p.formatOf("model.layers.3.self_attn.v_proj.weight").value_or(""), std::string("Q6_K"));
        QVERIFY(!p.formatOf("model.layers.3.mlp.down_proj.weight")); // unmatched: back to the stored type
        QVERIFY(!p.formatOf("lm_head.weight"));
        QCOMPARE(p.assignments().size(), size_t(1 + 7 + 3));
        QCOMPARE(p.rules(), m->rules());
        for (const char* f : {"BF16", "Q8_0", "Q6_K"})
            QVERIFY2(p.tierIndex(f) >= 0, f);
        doc.undoStack()->undo();
        QVERIFY(doc.plan() == before);
    }

    void matchKindSwitchKeepsARole()
    {
        RulesModel m;
        m.addRule({PlanRule::Match::Regex, "^blk\\.0\\.", "Q8_0"});
        QVERIFY(m.setData(m.index(0, RulesModel::MatchColumn), QStringLiteral("Role")));
        QCOMPARE(m.rules()[0].match, PlanRule::Match::Role);
        // The regex text is not a role: a valid role replaces it.
        QVERIFY(m.index(0, RulesModel::PatternColumn).data(Qt::UserRole + 1).toStringList().contains(
            QString::fromStdString(m.rules()[0].pattern)));
        QVERIFY(m.removeRows(0, 1));
        QCOMPARE(m.rowCount(), 0);
    }
};

QTEST_MAIN(TestRulesEditor)
#include "tst_ruleseditor.moc"
