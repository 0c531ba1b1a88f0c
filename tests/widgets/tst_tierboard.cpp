// The tier board model and its plan document: the drag-and-drop round trip (mimeData -> dropMimeData)
// moves exactly the dragged tensors, one undo step per drop, undo/redo restore the plan exactly; whole
// groups drag all their tensors; non-plannable tensors and foreign MIME data are refused; the footprint
// panel follows every change with the bytes the plan implies.
#include "core/plan/plan.h"
#include "core/quant/format.h"
#include "widgets/footprintpanel.h"
#include "widgets/plandocument.h"
#include "widgets/tierboardmodel.h"
#include "widgets/tierboardview.h"

#include <QAbstractItemModelTester>
#include <QApplication>
#include <QLabel>
#include <QMenu>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QMimeData>
#include <QSpinBox>
#include <QToolButton>
#include <QTreeView>
#include <QUndoStack>
#include <QtTest>
#include <qcustomplot.h>

using namespace qs;

namespace {

// Two llama-like blocks in HF naming; every row length (256) fits K-quant blocks.
ModelLayout makeLayout()
{
    ModelLayout layout;
    layout.path = "/tmp/fake";
    layout.format = ModelFormat::Safetensors;
    layout.config.architecture = "llama";
    layout.config.layers = 2;
    layout.config.hiddenSize = 256;
    layout.config.heads = 4;
    layout.config.kvHeads = 2;
    layout.config.headDim = 64;
    layout.config.vocabSize = 1024;
    layout.config.contextLength = 2048;
    auto add = [&](const std::string& name, std::vector<uint64_t> shape) {
        TensorInfo t;
        t.name = name;
        t.shape = std::move(shape);
        t.dtype = DType::BF16;
        t.bytes = t.elements() * 2;
        t.role = classifyTensor(name);
        layout.tensors.push_back(t);
    };
    add("model.embed_tokens.weight", {1024, 256});
    for (int b = 0; b < 2; ++b) {
        const std::string p = "model.layers." + std::to_string(b) + ".";
        add(p + "input_layernorm.weight", {256});
        add(p + "self_attn.q_proj.weight", {256, 256});
        add(p + "self_attn.k_proj.weight", {128, 256});
        add(p + "self_attn.v_proj.weight", {128, 256});
        add(p + "self_attn.o_proj.weight", {256, 256});
        add(p + "mlp.gate_proj.weight", {512, 256});
        add(p + "mlp.up_proj.weight", {512, 256});
        add(p + "mlp.down_proj.weight", {256, 512});
    }
    add("model.norm.weight", {256});
    add("lm_head.weight", {1024, 256});
    return layout;
}

QModelIndex findTensor(const TierBoardModel& model, const QString& name)
{
    return model.indexForTensor(name);
}

} // namespace

class TestTierBoard : public QObject {
    Q_OBJECT

private slots:
    void modelContract();
    void dropRoundTripAndUndo();
    void groupDragMovesAllTensors();
    void refusesForeignAndNonPlannable();
    void footprintFollowsPlan();
    void contextBeyondTrainingIsFlagged();
    void footprintRuntimeSettings();
    void tiersAreEditable();
    void keyboardMove();
    void shortcutAndSyntheticDrop();
    void headerBitsPerWeight();
};

void TestTierBoard::modelContract()
{
    PlanDocument doc;
    TierBoardModel model(&doc);
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    doc.setLayout(makeLayout(), QStringLiteral("all-Q4_K"));
    QVERIFY(model.tierCount() >= 1 + int(Plan::defaultTiers().size()));
    QVERIFY(doc.assign({QStringLiteral("lm_head.weight")}, QStringLiteral("Q8_0")));
    doc.undoStack()->undo();
    doc.undoStack()->redo();
}

void TestTierBoard::dropRoundTripAndUndo()
{
    PlanDocument doc;
    TierBoardModel model(&doc);
    doc.setLayout(makeLayout(), QStringLiteral("all-Q4_K"));
    const Plan initial = doc.plan();
    QCOMPARE(initial.formatOf("model.layers.1.mlp.down_proj.weight").value_or(""), std::string("Q4_K"));
    QCOMPARE(doc.undoStack()->count(), 0);

    // Drag two tensors out of the Q4_K column...
    const QModelIndex a = findTensor(model, QStringLiteral("model.layers.1.mlp.down_proj.weight"));
    const QModelIndex b = findTensor(model, QStringLiteral("model.layers.0.self_attn.v_proj.weight"));
    QVERIFY(a.isValid() && b.isValid());
    QCOMPARE(model.tierFormat(model.tierOf(a)), QStringLiteral("Q4_K"));
    std::unique_ptr<QMimeData> mime(model.mimeData({a, b}));
    QVERIFY(mime);
    QVERIFY(mime->hasFormat(QString::fromLatin1(TierBoardModel::mimeType)));
    QCOMPARE(TierBoardModel::namesFromMime(mime.get()),
             (QStringList{"model.layers.1.mlp.down_proj.weight", "model.layers.0.self_attn.v_proj.weight"}));

    // ... and drop them on the Q6_K column (its root, as when dropped on empty space).
    const int q6 = model.tierForFormat(QStringLiteral("Q6_K"));
    QVERIFY(q6 > 0);
    QVERIFY(model.canDropMimeData(mime.get(), Qt::MoveAction, -1, 0, model.tierIndex(q6)));
    QVERIFY(model.dropMimeData(mime.get(), Qt::MoveAction, -1, 0, model.tierIndex(q6)));
    QCOMPARE(doc.plan().formatOf("model.layers.1.mlp.down_proj.weight").value_or(""), std::string("Q6_K"));
    QCOMPARE(doc.plan().formatOf("model.layers.0.self_attn.v_proj.weight").value_or(""), std::string("Q6_K"));
    QCOMPARE(doc.undoStack()->count(), 1); // one drop, one undo step
    // Nothing else changed.
    Plan expected = initial;
    expected.assign("model.layers.1.mlp.down_proj.weight", "Q6_K");
    expected.assign("model.layers.0.self_attn.v_proj.weight", "Q6_K");
    QVERIFY(doc.plan() == expected);
    // The board shows them in the Q6_K column now.
    QCOMPARE(model.tierOf(findTensor(model, QStringLiteral("model.layers.1.mlp.down_proj.weight"))), q6);
    QCOMPARE(model.tierIndex(q6).data(TierBoardModel::TensorNamesRole).toStringList().size(), 2);

    // Dropping inside a group of a column (parent = a group index) works the same way.
    std::unique_ptr<QMimeData> again(model.mimeData({findTensor(model, QStringLiteral("lm_head.weight"))}));
    const QModelIndex q6Group = model.index(0, 0, model.tierIndex(q6));
    QVERIFY(model.dropMimeData(again.get(), Qt::MoveAction, 0, 0, q6Group));
    QCOMPARE(doc.plan().formatOf("lm_head.weight").value_or(""), std::string("Q6_K"));
    QCOMPARE(doc.undoStack()->count(), 2);

    doc.undoStack()->undo();
    QVERIFY(doc.plan() == expected);
    doc.undoStack()->undo();
    QVERIFY(doc.plan() == initial);
    QCOMPARE(model.tierOf(findTensor(model, QStringLiteral("model.layers.1.mlp.down_proj.weight"))),
             model.tierForFormat(QStringLiteral("Q4_K")));
    doc.undoStack()->redo();
    QVERIFY(doc.plan() == expected);

    // A drop that changes nothing is no undo step.
    std::unique_ptr<QMimeData> same(model.mimeData({findTensor(model, QStringLiteral("model.layers.1.mlp.down_proj.weight"))}));
    model.dropMimeData(same.get(), Qt::MoveAction, -1, 0, model.tierIndex(q6));
    QCOMPARE(doc.undoStack()->index(), 1);

    // Dropping on "Unchanged" removes the assignment.
    QVERIFY(model.dropMimeData(same.get(), Qt::MoveAction, -1, 0, model.tierIndex(0)));
    QVERIFY(!doc.plan().formatOf("model.layers.1.mlp.down_proj.weight"));
}

void TestTierBoard::groupDragMovesAllTensors()
{
    PlanDocument doc;
    TierBoardModel model(&doc);
    doc.setLayout(makeLayout(), QStringLiteral("all-Q4_K"));
    const int q4 = model.tierForFormat(QStringLiteral("Q4_K"));
    // The first group of the Q4_K column is Block 0 with its 7 plannable matrices.
    const QModelIndex group = model.index(0, 0, model.tierIndex(q4));
    QCOMPARE(group.data(TierBoardModel::NodeKindRole).toInt(), int(TierBoardModel::NodeKind::Group));
    const QStringList names = group.data(TierBoardModel::TensorNamesRole).toStringList();
    QCOMPARE(names.size(), 7);
    for (const QString& n : names)
        QVERIFY(n.startsWith(QStringLiteral("model.layers.0.")));
    std::unique_ptr<QMimeData> mime(model.mimeData({group}));
    const int q8 = model.tierForFormat(QStringLiteral("Q8_0"));
    QVERIFY(model.dropMimeData(mime.get(), Qt::MoveAction, -1, 0, model.tierIndex(q8)));
    for (const QString& n : names)
        QCOMPARE(doc.plan().formatOf(n.toStdString()).value_or(""), std::string("Q8_0"));
    QCOMPARE(doc.undoStack()->count(), 1);
    QCOMPARE(doc.undoStack()->text(0), QStringLiteral("Move 7 tensors to Q8_0"));
}

void TestTierBoard::refusesForeignAndNonPlannable()
{
    PlanDocument doc;
    TierBoardModel model(&doc);
    doc.setLayout(makeLayout(), QStringLiteral("all-Q4_K"));
    QMimeData text;
    text.setText(QStringLiteral("model.layers.0.mlp.up_proj.weight"));
    QVERIFY(!model.canDropMimeData(&text, Qt::MoveAction, -1, 0, model.tierIndex(1)));
    QVERIFY(!model.dropMimeData(&text, Qt::MoveAction, -1, 0, model.tierIndex(1)));
    QVERIFY(!model.dropMimeData(&text, Qt::MoveAction, -1, 0, QModelIndex()));
    // Norms are not plannable: a (forged) drag of one changes nothing.
    QVERIFY(!doc.assign({QStringLiteral("model.norm.weight")}, QStringLiteral("Q8_0")));
    QCOMPARE(doc.undoStack()->count(), 0);
    // A corrupt payload yields no names.
    QMimeData bad;
    bad.setData(QString::fromLatin1(TierBoardModel::mimeType), QByteArray("\x00\x00\x00\x07garbage", 11));
    QVERIFY(TierBoardModel::namesFromMime(&bad).isEmpty());
}

void TestTierBoard::footprintFollowsPlan()
{
    PlanDocument doc;
    FootprintPanel panel(&doc);
    doc.setLayout(makeLayout(), QStringLiteral("all-Q8_0"));
    // Q8_0: 34 bytes per 32 weights; norms stay BF16 (2 bytes each).
    const ModelLayout& layout = doc.layout();
    uint64_t expected = 0;
    for (const auto& t : layout.tensors)
        expected += isPlannable(t) ? t.elements() / 32 * 34 : t.bytes;
    QCOMPARE(panel.weightBytes(), expected);
    const uint64_t before = panel.weightBytes();
    QVERIFY(doc.assign({QStringLiteral("lm_head.weight")}, QStringLiteral("Q4_0"))); // 18 bytes per 32
    QCOMPARE(panel.weightBytes(), before - 1024 * 256 / 32 * (34 - 18));
    doc.undoStack()->undo();
    QCOMPARE(panel.weightBytes(), before);
    // GPU fits are computed for each chosen GPU when the catalogue is available.
    panel.setGpus({QStringLiteral("rtx-4090")});
    if (!panel.gpus().isEmpty()) {
        QCOMPARE(panel.fits().size(), size_t(1));
        // llama.cpp keeps the (untied) token embedding in host memory: 1024 x 256 in Q8_0.
        QCOMPARE(panel.fits().front().footprint.weightsBytes, before - 1024 * 256 / 32 * 34);
        QCOMPARE(panel.fits().front().footprint.hostWeightsBytes, uint64_t(1024 * 256 / 32 * 34));
        QVERIFY(panel.fits().front().fits);
    }
}

void TestTierBoard::contextBeyondTrainingIsFlagged()
{
    // Issue 13 #10: a context above the trained 2048 tokens is flagged where it is chosen; at or below, silent.
    PlanDocument doc;
    FootprintPanel panel(&doc);
    doc.setLayout(makeLayout(), QStringLiteral("all-Q8_0"));
    auto* context = panel.findChild<QSpinBox*>(QStringLiteral("footprintContext"));
    QVERIFY(context);
    QCOMPARE(context->value(), 2048); // the trained context (below 4096)
    QVERIFY(!panel.summaryText().contains(QStringLiteral("beyond")));
    context->setValue(131072);
    QVERIFY2(panel.summaryText().contains(QStringLiteral("Context 131,072 is beyond the model's trained context of "
                                                         "2,048 tokens")),
             qPrintable(panel.summaryText()));
    context->setValue(2048);
    QVERIFY(!panel.summaryText().contains(QStringLiteral("beyond")));
    // Issue 13 #9: no line across the chart at the first GPU's row (the categorical axis' zero line).
    auto* plot = panel.findChild<QCustomPlot*>(QStringLiteral("footprintPlot"));
    QVERIFY(plot);
    QCOMPARE(plot->yAxis->grid()->zeroLinePen().style(), Qt::NoPen);
}

void TestTierBoard::footprintRuntimeSettings()
{
    // Issue 12: the runtime settings that change memory are offered in the panel (llama.cpp -fa and
    // --swa-full, transformers' attention, vLLM's memory share, tensor parallel GPUs), only for the runtime
    // they belong to, and each figure is the core estimate for the request shown.
    PlanDocument doc;
    FootprintPanel panel(&doc);
    ModelLayout layout = makeLayout();
    layout.config.slidingWindow = 256; // every layer sliding: --swa-full then keeps the whole context
    doc.setLayout(layout, QStringLiteral("all-Q8_0"));
    panel.setGpus({QStringLiteral("rtx-4090")});
    QCOMPARE(panel.fits().size(), size_t(1));
    auto* options = panel.findChild<QToolButton*>(QStringLiteral("footprintOptions"));
    auto* runtime = panel.findChild<QComboBox*>(QStringLiteral("footprintRuntime"));
    auto* share = panel.findChild<QDoubleSpinBox*>(QStringLiteral("footprintUtilization"));
    auto* gpus = panel.findChild<QSpinBox*>(QStringLiteral("footprintGpuCount"));
    QVERIFY(options && options->menu() && runtime && share && gpus);
    const QList<QAction*> actions = options->menu()->actions();
    QCOMPARE(actions.size(), 4);
    QAction* fa = actions[0];
    QAction* swaFull = actions[1];
    QAction* eager = actions[2];
    QAction* padded = actions[3];
    // llama.cpp: its two switches, defaults -fa on and --swa-full off (llama-server's behaviour).
    QVERIFY(fa->isVisible() && swaFull->isVisible() && !eager->isVisible() && !padded->isVisible());
    QVERIFY(fa->isChecked() && !swaFull->isChecked() && padded->isChecked() && !eager->isChecked());
    QVERIFY(share->isHidden());
    const GpuCatalog catalog = GpuCatalog::load();
    const GpuSpec& gpu = *catalog.find("rtx-4090");
    const WeightSummary weights = summarizeWeights(doc.layout(), planBytesFn(doc.plan()));
    auto core = [&] {
        FootprintRequest r = panel.currentRequest();
        r.gpuArchitecture = gpu.architecture;
        return fitOnGpu(doc.layout(), weights, r, gpu);
    };
    auto shown = [&] { return panel.fits().front(); };
    const GpuFit withFa = shown();
    QCOMPARE(withFa.footprint.totalBytes(), core().footprint.totalBytes());
    // Window + ubatch cells: min(2048, 256 + 512) per layer at the trained 2048 context.
    const uint64_t kvCell = 2 /*layers*/ * 2 /*k, v*/ * 2 /*kv heads*/ * 64 /*head dim*/ * 2 /*f16*/;
    QCOMPARE(withFa.footprint.kvCacheBytes, kvCell * (256 + 512));
    swaFull->setChecked(true);
    QCOMPARE(shown().footprint.kvCacheBytes, kvCell * 2048);
    QVERIFY(panel.currentRequest().runtime.swaFull);
    fa->setChecked(false);
    QVERIFY(!panel.currentRequest().runtime.flashAttention);
    QVERIFY(shown().footprint.totalBytes() > withFa.footprint.totalBytes() + kvCell * (2048 - 768));
    QCOMPARE(shown().footprint.totalBytes(), core().footprint.totalBytes());
    // Two GPUs: each holds half the cache (2 kv heads, one per GPU).
    gpus->setValue(2);
    QCOMPARE(panel.currentRequest().gpuCount, 2u);
    QCOMPARE(shown().footprint.kvCacheBytes, kvCell * 2048 / 2);
    QCOMPARE(shown().footprint.totalBytes(), core().footprint.totalBytes());
    gpus->setValue(1);

    // transformers: attention implementation and padding; eager holds the scores, so it needs more.
    runtime->setCurrentIndex(runtime->findData(int(Runtime::Transformers)));
    QVERIFY(!fa->isVisible() && !swaFull->isVisible() && eager->isVisible() && padded->isVisible());
    const uint64_t sdpa = shown().footprint.activationBytes;
    eager->setChecked(true);
    QCOMPARE(panel.currentRequest().runtime.attnImpl, AttnImpl::Eager);
    QVERIFY(shown().footprint.activationBytes > sdpa);
    QCOMPARE(shown().footprint.totalBytes(), core().footprint.totalBytes());

    // vLLM: the memory share replaces the options; the budget is share x usable memory.
    runtime->setCurrentIndex(runtime->findData(int(Runtime::Vllm)));
    QVERIFY(!share->isHidden());
    QVERIFY(!options->isEnabled());
    share->setValue(0.5);
    QCOMPARE(shown().gpuBytes, uint64_t(double(gpu.usableBytes()) * 0.5));
    QCOMPARE(shown().gpuBytes, gpuBudgetBytes(gpu, panel.currentRequest().runtime));

    // A fit's request round-trips through the panel, settings included.
    FootprintRequest r;
    r.runtime.runtime = Runtime::LlamaCpp;
    r.runtime.flashAttention = false;
    r.runtime.swaFull = true;
    r.gpuCount = 3;
    r.context = 1024;
    panel.showRequest(QStringLiteral("rtx-4090"), r);
    const FootprintRequest back = panel.currentRequest();
    QVERIFY(!back.runtime.flashAttention && back.runtime.swaFull);
    QCOMPARE(back.gpuCount, 3u);
    QCOMPARE(back.context, uint64_t(1024));
    QVERIFY(fa->isVisible() && share->isHidden());
}

void TestTierBoard::tiersAreEditable()
{
    // Issue 13 #1: any format can become a tier, and tiers can be moved and removed, each one undo step.
    PlanDocument doc;
    TierBoardView board(&doc);
    doc.setLayout(makeLayout(), QStringLiteral("all-Q4_K"));
    const std::vector<std::string> before = doc.plan().tiers();
    QVERIFY(doc.plan().tierIndex("INT8-ch-sym") < 0);

    QMenu add;
    board.fillAddTierMenu(&add);
    auto* int8 = add.findChild<QAction*>(QStringLiteral("addTier:INT8-ch-sym"));
    QVERIFY(int8);
    QVERIFY(int8->text().contains(QStringLiteral("bpw")));
    QVERIFY(!add.findChild<QAction*>(QStringLiteral("addTier:Q4_K"))); // already a tier
    int8->trigger();
    QCOMPARE(doc.undoStack()->count(), 1);
    const int at = doc.plan().tierIndex("INT8-ch-sym");
    QVERIFY(at >= 0);
    // Placed by bits per weight: every tier before it stores more bits, every tier after it fewer or equal.
    auto bits = [](const std::string& f) { return *formatBitsPerWeight(*findFormat(f), 4096, 4096); };
    for (int i = 0; i < int(doc.plan().tiers().size()); ++i)
        if (i != at)
            QVERIFY2(i < at ? bits(doc.plan().tiers()[size_t(i)]) > bits("INT8-ch-sym")
                            : bits(doc.plan().tiers()[size_t(i)]) <= bits("INT8-ch-sym"),
                     doc.plan().tiers()[size_t(i)].c_str());
    // A board column appeared for it.
    TierBoardModel* model = board.model();
    const int column = model->tierForFormat(QStringLiteral("INT8-ch-sym"));
    QVERIFY(column >= 0);
    QCOMPARE(board.tierViewCount(), model->tierCount());

    // Move it right, then put the head in it and remove the tier: the head returns to its stored type.
    QMenu header;
    board.fillTierMenu(&header, column);
    QCOMPARE(header.actions().size(), 6); // left, right, remove, method, separator, add
    header.actions()[1]->trigger();
    QCOMPARE(doc.plan().tierIndex("INT8-ch-sym"), at + 1);
    QVERIFY(doc.assign({QStringLiteral("lm_head.weight")}, QStringLiteral("INT8-ch-sym")));
    QMenu again;
    board.fillTierMenu(&again, model->tierForFormat(QStringLiteral("INT8-ch-sym")));
    QVERIFY(again.actions()[2]->text().contains(QStringLiteral("return 1 tensor to the stored type")));
    again.actions()[2]->trigger();
    QVERIFY(doc.plan().tierIndex("INT8-ch-sym") < 0);
    QVERIFY(!doc.plan().formatOf("lm_head.weight"));
    QCOMPARE(doc.undoStack()->count(), 4);
    // Undo all: the original tiers and assignments.
    while (doc.undoStack()->canUndo())
        doc.undoStack()->undo();
    QCOMPARE(doc.plan().tiers(), before);
    QCOMPARE(doc.plan().formatOf("lm_head.weight").value_or(""), std::string("Q4_K"));
    // "Unchanged" has no tier menu.
    QMenu unchanged;
    board.fillTierMenu(&unchanged, model->tierForFormat(QString()));
    QVERIFY(unchanged.isEmpty());
}

void TestTierBoard::keyboardMove()
{
    PlanDocument doc;
    TierBoardView board(&doc);
    doc.setLayout(makeLayout(), QStringLiteral("all-Q4_K"));
    TierBoardModel* model = board.model();
    const int q4 = model->tierForFormat(QStringLiteral("Q4_K"));
    QTreeView* view = board.tierView(q4);
    QVERIFY(view);
    const QModelIndex t = model->indexForTensor(QStringLiteral("lm_head.weight"));
    view->selectionModel()->select(t, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    QVERIFY(board.moveSelection(view, q4 - 1)); // one tier more precise
    QCOMPARE(QString::fromStdString(doc.plan().formatOf("lm_head.weight").value_or("")), model->tierFormat(q4 - 1));
    QCOMPARE(doc.undoStack()->count(), 1);
}

void TestTierBoard::shortcutAndSyntheticDrop()
{
    PlanDocument doc;
    TierBoardView board(&doc);
    board.resize(1600, 600);
    board.show();
    QApplication::setActiveWindow(&board);
    QVERIFY(QTest::qWaitForWindowActive(&board));
    doc.setLayout(makeLayout(), QStringLiteral("all-Q4_K"));
    TierBoardModel* model = board.model();
    const int q4 = model->tierForFormat(QStringLiteral("Q4_K"));

    // Ctrl+Right on the focused column: one tier less precise.
    QTreeView* view = board.tierView(q4);
    const QModelIndex t = model->indexForTensor(QStringLiteral("model.layers.1.mlp.up_proj.weight"));
    view->setFocus();
    view->selectionModel()->select(t, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    QTest::keyClick(view, Qt::Key_Right, Qt::ControlModifier);
    QCOMPARE(QString::fromStdString(doc.plan().formatOf("model.layers.1.mlp.up_proj.weight").value_or("")),
             model->tierFormat(q4 + 1));

    // A drop event delivered to another column's viewport (empty area: the column itself).
    const int q8 = model->tierForFormat(QStringLiteral("Q8_0"));
    QTreeView* target = board.tierView(q8);
    QVERIFY(target);
    std::unique_ptr<QMimeData> mime(model->mimeData({model->indexForTensor(QStringLiteral("lm_head.weight"))}));
    const QPointF at(target->viewport()->width() / 2.0, target->viewport()->height() - 5.0);
    QDragEnterEvent enter(at.toPoint(), Qt::MoveAction, mime.get(), Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(target->viewport(), &enter);
    QDragMoveEvent move(at.toPoint(), Qt::MoveAction, mime.get(), Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(target->viewport(), &move);
    QVERIFY(move.isAccepted());
    QDropEvent drop(at, Qt::MoveAction, mime.get(), Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(target->viewport(), &drop);
    QCOMPARE(doc.plan().formatOf("lm_head.weight").value_or(""), std::string("Q8_0"));
    QCOMPARE(doc.undoStack()->count(), 2);
}

// The tier header shows a format's bits per weight as stored in a real-sized matrix, not in one row:
// INT4 with groups of 128 and an asymmetric zero point is 4 bits + a 16-bit scale and a 4-bit zero point
// per 128 weights = 4 + 20/128 = 4.156 bpw (the old header said 36.38, from a single 4096-wide row).
void TestTierBoard::headerBitsPerWeight()
{
    PlanDocument doc;
    TierBoardView board(&doc);
    doc.setLayout(makeLayout(), QStringLiteral("all-INT4-g128-asym"));
    auto* header = board.findChild<QLabel*>(QStringLiteral("tierHeader:INT4-g128-asym"));
    QVERIFY(header);
    QVERIFY2(header->text().contains(QStringLiteral("4.16 bpw")), qPrintable(header->text()));
    auto* q8 = board.findChild<QLabel*>(QStringLiteral("tierHeader:Q8_0"));
    QVERIFY(q8);
    // Q8_0: 32 int8 + one F16 scale per block of 32 = 34 bytes / 32 weights = 8.5 bpw.
    QVERIFY2(q8->text().contains(QStringLiteral("8.50 bpw")), qPrintable(q8->text()));

    // The tier menu sets the method (one undo step); the header names it; a method the format cannot
    // take is disabled with the reason.
    QMenu menu;
    board.fillTierMenu(&menu, board.model()->tierForFormat(QStringLiteral("INT4-g128-asym")));
    auto* gptq = menu.findChild<QAction*>(QStringLiteral("tierMethod:gptq"));
    QVERIFY(gptq && gptq->isEnabled() && !gptq->isChecked());
    gptq->trigger();
    QCOMPARE(int(doc.plan().tierMethod("INT4-g128-asym")), int(QuantMethod::Gptq));
    QCOMPARE(doc.undoStack()->count(), 1);
    header = board.findChild<QLabel*>(QStringLiteral("tierHeader:INT4-g128-asym"));
    QVERIFY2(header->text().contains(QStringLiteral("4.16 bpw · GPTQ")), qPrintable(header->text()));
    QMenu q8Menu;
    board.fillTierMenu(&q8Menu, board.model()->tierForFormat(QStringLiteral("Q8_0")));
    auto* q8Gptq = q8Menu.findChild<QAction*>(QStringLiteral("tierMethod:gptq"));
    QVERIFY(q8Gptq && q8Gptq->isEnabled()); // GPTQ rounds into Q8_0's blocks (docs/gptq.md)
    QVERIFY(q8Menu.findChild<QAction*>(QStringLiteral("tierMethod:awq"))->isEnabled());
    QVERIFY(q8Menu.findChild<QAction*>(QStringLiteral("tierMethod:rtn"))->isChecked());
    QMenu bf16Menu;
    board.fillTierMenu(&bf16Menu, board.model()->tierForFormat(QStringLiteral("BF16")));
    auto* bf16Gptq = bf16Menu.findChild<QAction*>(QStringLiteral("tierMethod:gptq"));
    QVERIFY(bf16Gptq && !bf16Gptq->isEnabled());
    QVERIFY(bf16Gptq->toolTip().contains(QStringLiteral("not an integer format")));
    doc.undoStack()->undo();
    QCOMPARE(int(doc.plan().tierMethod("INT4-g128-asym")), int(QuantMethod::Rtn));
}

QTEST_MAIN(TestTierBoard)
#include "tst_tierboard.moc"
