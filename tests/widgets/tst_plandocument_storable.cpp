// A drop on the tier board never leaves a tensor in a format it cannot be stored in for the plan's target:
// llama.cpp's fallback is assigned instead (with the reason), a format the target cannot express is refused
// (the tensor stays where it was, with the reason), and both are reported once per drop.
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "widgets/plandocument.h"

#include <QSignalSpy>
#include <QUndoStack>
#include <QtTest>

using namespace qs;

namespace {

// 64-wide rows: no 256-value k-quant block fits them.
const char* kTiny = R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
 "num_attention_heads":2,"num_key_value_heads":2,"vocab_size":256,"max_position_embeddings":4096,
 "tie_word_embeddings":false})";

} // namespace

class TestPlanDocumentStorable : public QObject {
    Q_OBJECT
private slots:
    void dropsFollowTheTarget()
    {
        PlanDocument doc;
        doc.setLayout(layoutFromConfigJson(kTiny), QString());
        doc.setTarget(ExportTarget::LlamaCpp);
        QSignalSpy adjusted(&doc, &PlanDocument::assignmentAdjusted);
        const QString q = QStringLiteral("model.layers.0.self_attn.q_proj.weight");
        // Q4_K on 64-wide rows: llama.cpp's table stores Q5_0 (src/llama-quant.cpp).
        QVERIFY(doc.assign({q}, QStringLiteral("Q4_K")));
        QCOMPARE(doc.plan().assignments().at(q.toStdString()), std::string("Q5_0"));
        QCOMPARE(adjusted.count(), 1);
        QVERIFY(adjusted.last().at(0).toStringList().front().contains(QStringLiteral("stored as Q5_0")));
        QVERIFY(doc.plan().tierIndex("Q5_0") >= 0); // the substitute is a tier on the board
        // Q8_0 divides the row: no adjustment.
        QVERIFY(doc.assign({q}, QStringLiteral("Q8_0")));
        QCOMPARE(doc.plan().assignments().at(q.toStdString()), std::string("Q8_0"));
        QCOMPARE(adjusted.count(), 1);
        // GPTQModel stores integer weights only: a ggml type is refused and nothing changes.
        doc.setTarget(ExportTarget::GptqModel);
        const int steps = doc.undoStack()->count();
        QVERIFY(!doc.assign({q}, QStringLiteral("Q4_K")));
        QCOMPARE(doc.undoStack()->count(), steps);
        QCOMPARE(doc.plan().assignments().at(q.toStdString()), std::string("Q8_0"));
        QCOMPARE(adjusted.count(), 2);
        QVERIFY(adjusted.last().at(0).toStringList().front().contains(QStringLiteral("not moved")));
    }
};

QTEST_MAIN(TestPlanDocumentStorable)
#include "tst_plandocument_storable.moc"
