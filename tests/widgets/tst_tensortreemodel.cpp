// The tensor tree model: Qt's model contract (QAbstractItemModelTester), grouping and aggregates checked
// against sums computed here from the tensor list, filtering and sorting through the proxy, and the
// number formatting every view shares.
#include "core/model/model.h"
#include "widgets/formatting.h"
#include "widgets/modelsummary.h"
#include "widgets/tensorfilterproxy.h"
#include "widgets/tensortreemodel.h"

#include <QAbstractItemModelTester>
#include <QtTest>

#include <map>
#include <set>

using namespace qs;

namespace {

// A hand-made llama-like model in GGUF naming: 3 blocks of 9 tensors, embedding, final norm, head.
std::shared_ptr<Model> makeModel()
{
    auto model = std::make_shared<Model>(ModelFormat::Gguf, "/tmp/fake.gguf");
    auto add = [&](const std::string& name, std::vector<uint64_t> shape, DType dtype) {
        TensorInfo t;
        t.name = name;
        t.shape = std::move(shape);
        t.dtype = dtype;
        t.bytes = dtypeByteSize(dtype, t.elements()).value();
        model->addTensor(std::move(t));
    };
    add("token_embd.weight", {512, 64}, DType::F16);
    for (int b = 0; b < 3; ++b) {
        const std::string p = "blk." + std::to_string(b) + ".";
        add(p + "attn_norm.weight", {64}, DType::F32);
        add(p + "attn_q.weight", {64, 64}, DType::Q8_0);
        add(p + "attn_k.weight", {32, 64}, DType::Q8_0);
        add(p + "attn_v.weight", {32, 64}, DType::Q8_0);
        add(p + "attn_output.weight", {64, 64}, DType::Q8_0);
        add(p + "ffn_norm.weight", {64}, DType::F32);
        add(p + "ffn_gate.weight", {192, 64}, DType::Q4_0);
        add(p + "ffn_up.weight", {192, 64}, DType::Q4_0);
        add(p + "ffn_down.weight", {64, 192}, DType::Q4_0);
    }
    add("output_norm.weight", {64}, DType::F32);
    add("output.weight", {512, 64}, DType::Q8_0);
    model->finalize();
    return model;
}

// Every tensor row under the (proxy or source) model, as tensor names.
QStringList visibleTensors(const QAbstractItemModel& m)
{
    QStringList names;
    for (int g = 0; g < m.rowCount(); ++g) {
        const QModelIndex group = m.index(g, 0);
        for (int r = 0; r < m.rowCount(group); ++r)
            names << m.index(r, 0, group).data(TensorTreeModel::TensorNameRole).toString();
    }
    return names;
}

} // namespace

class TestTensorTreeModel : public QObject {
    Q_OBJECT

private slots:
    void modelContract();
    void groupsMatchRoles();
    void groupingByBlock();
    void normsOutsideBlocklessModelsAreNotHead();
    void columnsAndAggregates();
    void indexForTensor();
    void filtering();
    void sorting();
    void formatting();
    void summary();
};

void TestTensorTreeModel::modelContract()
{
    TensorTreeModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    TensorFilterProxy proxy;
    proxy.setSourceModel(&model);
    QAbstractItemModelTester proxyTester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QCOMPARE(model.rowCount(), 0);
    model.setModel(makeModel());
    proxy.setFilterPattern(QStringLiteral("attn"));
    proxy.sort(TensorTreeModel::SizeColumn, Qt::DescendingOrder);
    proxy.setFilterPattern(QString());
    model.setModel(nullptr);
    QCOMPARE(model.rowCount(), 0);
    model.setModel(makeModel());
    QVERIFY(model.rowCount() > 0);
}

void TestTensorTreeModel::groupsMatchRoles()
{
    // Whatever the classifier says, every tensor appears exactly once, under the group of its block.
    const auto m = makeModel();
    TensorTreeModel model;
    model.setModel(m);
    QStringList all = visibleTensors(model);
    QCOMPARE(all.size(), int(m->tensors().size()));
    QCOMPARE(QSet<QString>(all.begin(), all.end()).size(), all.size());
    for (int g = 0; g < model.rowCount(); ++g) {
        const QModelIndex group = model.index(g, 0);
        for (int r = 0; r < model.rowCount(group); ++r) {
            const QModelIndex t = model.index(r, 0, group);
            QCOMPARE(t.parent(), group);
            const TensorInfo* info = m->find(t.data(TensorTreeModel::TensorNameRole).toString().toStdString());
            QVERIFY(info);
            QCOMPARE(t.data(TensorTreeModel::BlockRole).toInt(), info->role.block);
            if (info->role.block >= 0)
                QCOMPARE(group.data().toString(), QStringLiteral("Block %1").arg(info->role.block));
        }
    }
}

void TestTensorTreeModel::groupingByBlock()
{
    TensorTreeModel model;
    model.setModel(makeModel());
    QCOMPARE(model.rowCount(), 5); // Embedding, Block 0..2, Head
    QCOMPARE(model.index(0, 0).data().toString(), QStringLiteral("Embedding"));
    QCOMPARE(model.index(1, 0).data().toString(), QStringLiteral("Block 0"));
    QCOMPARE(model.index(3, 0).data().toString(), QStringLiteral("Block 2"));
    QCOMPARE(model.index(4, 0).data().toString(), QStringLiteral("Head"));
    QCOMPARE(model.rowCount(model.index(0, 0)), 1);
    QCOMPARE(model.rowCount(model.index(2, 0)), 9);
    QCOMPARE(model.rowCount(model.index(4, 0)), 2);
    QCOMPARE(model.index(0, 0, model.index(4, 0)).data().toString(), QStringLiteral("output_norm.weight"));
    QCOMPARE(model.index(1, TensorTreeModel::RoleColumn, model.index(1, 0)).data().toString(),
             QStringLiteral("attn_q"));
}

void TestTensorTreeModel::normsOutsideBlocklessModelsAreNotHead()
{
    auto m = std::make_shared<Model>(ModelFormat::Keras, "/tmp/net.h5");
    for (const char* name : {"conv1.weight", "model.norm.weight"}) {
        TensorInfo t;
        t.name = name;
        t.shape = {4};
        t.bytes = 16;
        m->addTensor(t);
    }
    m->finalize();
    TensorTreeModel model;
    model.setModel(m);
    for (int g = 0; g < model.rowCount(); ++g)
        QVERIFY(model.index(g, 0).data().toString() != QStringLiteral("Head"));
    // With blocks, the same final norm belongs to the head.
    model.setModel(makeModel());
    const QModelIndex norm = model.indexForTensor(QStringLiteral("output_norm.weight"));
    QCOMPARE(norm.parent().data().toString(), QStringLiteral("Head"));
}

void TestTensorTreeModel::columnsAndAggregates()
{
    const auto m = makeModel();
    TensorTreeModel model;
    model.setModel(m);
    // Group aggregates equal the sums of their tensors, computed here from the tensor list.
    std::map<QString, std::pair<uint64_t, uint64_t>> expected;
    uint64_t totalParams = 0, totalBytes = 0;
    for (int g = 0; g < model.rowCount(); ++g) {
        const QModelIndex group = model.index(g, 0);
        uint64_t p = 0, b = 0;
        for (int r = 0; r < model.rowCount(group); ++r) {
            const TensorInfo* t =
                m->find(model.index(r, 0, group).data(TensorTreeModel::TensorNameRole).toString().toStdString());
            p += t->elements();
            b += t->bytes;
        }
        QCOMPARE(model.index(g, TensorTreeModel::ParametersColumn).data(TensorTreeModel::SortRole).toULongLong(), p);
        QCOMPARE(model.index(g, TensorTreeModel::SizeColumn).data(TensorTreeModel::SortRole).toULongLong(), b);
        totalParams += p;
        totalBytes += b;
    }
    QCOMPARE(totalParams, m->parameterCount());
    QCOMPARE(totalBytes, m->totalBytes());
    // 512*64 + 3*(2*64 + 2*64*64 + 2*32*64 + 3*192*64) + 64 + 512*64
    QCOMPARE(totalParams, uint64_t(32768 + 3 * (128 + 8192 + 4096 + 36864) + 64 + 32768));

    const QModelIndex q = model.indexForTensor(QStringLiteral("blk.1.attn_q.weight"));
    QVERIFY(q.isValid());
    auto cell = [&](int column, int role = Qt::DisplayRole) { return q.siblingAtColumn(column).data(role); };
    QCOMPARE(cell(TensorTreeModel::NameColumn).toString(), QStringLiteral("blk.1.attn_q.weight"));
    QCOMPARE(cell(TensorTreeModel::ShapeColumn).toString(), QStringLiteral("64 × 64"));
    QCOMPARE(cell(TensorTreeModel::DTypeColumn).toString(), QStringLiteral("Q8_0"));
    QCOMPARE(cell(TensorTreeModel::ParametersColumn).toString(), QStringLiteral("4.1K"));
    // Q8_0: 34 bytes per 32 values -> 4096 / 32 * 34 = 4352 bytes.
    QCOMPARE(cell(TensorTreeModel::SizeColumn, TensorTreeModel::SortRole).toULongLong(), 4352ull);
    QCOMPARE(cell(TensorTreeModel::SizeColumn).toString(), QStringLiteral("4.25 KiB"));
    QCOMPARE(model.flags(q) & Qt::ItemNeverHasChildren, Qt::ItemNeverHasChildren);
    // Group rows list the dtypes they hold, in order of first appearance.
    const QModelIndex group = q.parent();
    QCOMPARE(group.siblingAtColumn(TensorTreeModel::DTypeColumn).data().toString(),
             QStringLiteral("F32, Q8_0, Q4_0"));
    QCOMPARE(group.data(TensorTreeModel::TensorIndexRole).toInt(), -1);
}

void TestTensorTreeModel::indexForTensor()
{
    const auto m = makeModel();
    TensorTreeModel model;
    model.setModel(m);
    for (size_t i = 0; i < m->tensors().size(); ++i) {
        const QString name = QString::fromStdString(m->tensors()[i].name);
        const QModelIndex idx = model.indexForTensor(name);
        QVERIFY(idx.isValid());
        QCOMPARE(idx.data(TensorTreeModel::TensorIndexRole).toInt(), int(i));
        QCOMPARE(idx.data().toString(), name);
    }
    QVERIFY(!model.indexForTensor(QStringLiteral("no.such.tensor")).isValid());
}

void TestTensorTreeModel::filtering()
{
    const auto m = makeModel();
    TensorTreeModel model;
    model.setModel(m);
    TensorFilterProxy proxy;
    proxy.setSourceModel(&model);

    QVERIFY(proxy.setFilterPattern(QStringLiteral("ATTN_Q")));
    QCOMPARE(visibleTensors(proxy), (QStringList{"blk.0.attn_q.weight", "blk.1.attn_q.weight", "blk.2.attn_q.weight"}));

    QVERIFY(proxy.setFilterPattern(QStringLiteral("ffn_(up|down)")));
    QCOMPARE(visibleTensors(proxy).size(), 6);
    // Groups without a match disappear (the embedding group holds no ffn tensor).
    for (int g = 0; g < proxy.rowCount(); ++g)
        QVERIFY(proxy.rowCount(proxy.index(g, 0)) > 0);

    // An invalid regular expression is matched literally (and reported).
    QVERIFY(!proxy.setFilterPattern(QStringLiteral("attn_q[")));
    QCOMPARE(visibleTensors(proxy).size(), 0);

    // A matching group title shows the whole group.
    QVERIFY(proxy.setFilterPattern(QStringLiteral("^Block 1$")));
    QCOMPARE(visibleTensors(proxy).size(), 9);
    // Role names match too ("mlp_down" is not in the GGUF name).
    const QString downRole = QString::fromLatin1(roleName(TensorRole::MlpDown));
    QVERIFY(proxy.setFilterPattern(QStringLiteral("\\b") + downRole + QStringLiteral("\\b")));
    QCOMPARE(visibleTensors(proxy),
             (QStringList{"blk.0.ffn_down.weight", "blk.1.ffn_down.weight", "blk.2.ffn_down.weight"}));
    proxy.setFilterPattern(QString());
    QCOMPARE(visibleTensors(proxy).size(), int(m->tensors().size()));
}

void TestTensorTreeModel::sorting()
{
    const auto m = makeModel();
    TensorTreeModel model;
    model.setModel(m);
    TensorFilterProxy proxy;
    proxy.setSourceModel(&model);
    proxy.sort(TensorTreeModel::SizeColumn, Qt::DescendingOrder);
    // Within every group, sizes are non-increasing (numeric, not text order: "43.0 KiB" < "256 B" as text).
    for (int g = 0; g < proxy.rowCount(); ++g) {
        const QModelIndex group = proxy.index(g, 0);
        for (int r = 1; r < proxy.rowCount(group); ++r) {
            const auto prev = proxy.index(r - 1, TensorTreeModel::SizeColumn, group).data(TensorTreeModel::SortRole);
            const auto cur = proxy.index(r, TensorTreeModel::SizeColumn, group).data(TensorTreeModel::SortRole);
            QVERIFY(prev.toULongLong() >= cur.toULongLong());
        }
    }
    // Sorting by name keeps the natural group order with blocks numerically ordered and tensors in file
    // order.
    proxy.sort(TensorTreeModel::NameColumn, Qt::AscendingOrder);
    QStringList order = visibleTensors(proxy);
    QStringList fileOrder;
    for (int g = 0; g < model.rowCount(); ++g)
        for (int r = 0; r < model.rowCount(model.index(g, 0)); ++r)
            fileOrder << model.index(r, 0, model.index(g, 0)).data().toString();
    QCOMPARE(order, fileOrder);
}

void TestTensorTreeModel::formatting()
{
    QCOMPARE(formatBytes(0), QStringLiteral("0 B"));
    QCOMPARE(formatBytes(1023), QStringLiteral("1023 B"));
    QCOMPARE(formatBytes(1536), QStringLiteral("1.50 KiB"));
    QCOMPARE(formatBytes(uint64_t(140) << 30), QStringLiteral("140 GiB"));
    QCOMPARE(formatCount(999), QStringLiteral("999"));
    QCOMPARE(formatCount(260000), QStringLiteral("260K"));
    QCOMPARE(formatCount(292928), QStringLiteral("293K"));
    QCOMPARE(formatCount(7241732096ull), QStringLiteral("7.24B"));
    QCOMPARE(formatCount(2048), QStringLiteral("2.05K"));
    QCOMPARE(formatExact(1234567), QStringLiteral("1,234,567"));
    QCOMPARE(formatShape({}), QStringLiteral("scalar"));
    QCOMPARE(formatShape({172, 64}), QStringLiteral("172 × 64"));
    QCOMPARE(formatStat(0.0), QStringLiteral("0"));
    QCOMPARE(formatStat(0.125), QStringLiteral("0.125"));
    QCOMPARE(formatStat(1.5e-5), QStringLiteral("1.500e-05"));
}

void TestTensorTreeModel::summary()
{
    const auto m = makeModel();
    m->mutableConfig().architecture = "llama";
    m->mutableConfig().layers = 3;
    m->mutableConfig().heads = 8;
    m->mutableConfig().kvHeads = 4;
    ModelSummaryWidget widget;
    widget.setModel(m);
    QCOMPARE(widget.value(QStringLiteral("Format")), QStringLiteral("gguf"));
    QCOMPARE(widget.value(QStringLiteral("Architecture")), QStringLiteral("llama"));
    QCOMPARE(widget.value(QStringLiteral("Layers")), QStringLiteral("3"));
    QCOMPARE(widget.value(QStringLiteral("Tensors")), QStringLiteral("30"));
    QCOMPARE(widget.value(QStringLiteral("Hidden size")), QStringLiteral("—"));
    QCOMPARE(widget.value(QStringLiteral("Parameters")), formatCount(m->parameterCount()));
    QCOMPARE(widget.value(QStringLiteral("Total size")), formatBytes(m->totalBytes()));
    // 8 * bytes / params, computed here from the per-dtype totals.
    uint64_t bytes = 0, params = 0;
    for (const auto& t : m->tensors()) {
        bytes += t.bytes;
        params += t.elements();
    }
    QCOMPARE(widget.value(QStringLiteral("Bits per weight")), QString::number(8.0 * double(bytes) / double(params), 'f', 2));
    // One storage row per dtype: 12 Q4_0 tensors... 9 Q4_0 (3 per block).
    QVERIFY(widget.value(QStringLiteral("Q4_0")).startsWith(QStringLiteral("9 tensors")));
    QVERIFY(widget.value(QStringLiteral("F16")).startsWith(QStringLiteral("1 tensor,")));
    QCOMPARE(widget.value(QStringLiteral("Warnings")), QString()); // no row without warnings
    // The loader's warnings: the first shown, with the count of the others.
    m->addWarning("Keras layer ghost is listed in layer_names but the file has no group /ghost");
    m->addWarning("second");
    widget.setModel(nullptr);
    widget.setModel(m);
    QCOMPARE(widget.value(QStringLiteral("Warnings")),
             QStringLiteral("Keras layer ghost is listed in layer_names but the file has no group /ghost — and 1 more"));
    widget.setModel(nullptr);
    QCOMPARE(widget.value(QStringLiteral("Format")), QString());
}

QTEST_MAIN(TestTensorTreeModel)
#include "tst_tensortreemodel.moc"
