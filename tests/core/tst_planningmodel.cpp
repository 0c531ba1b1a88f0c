// Config-only derivation: a config.json alone becomes a model with the checkpoint's derived tensors (no
// data) and a layout to plan with; opened models pass through; a config that cannot be derived keeps the
// opened model and says why.
#include "core/model/model.h"
#include "core/plan/planningmodel.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>

using namespace qs;

namespace {

QString writeConfig(const QTemporaryDir& dir, const QByteArray& json)
{
    const QString path = dir.filePath(QStringLiteral("config.json"));
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly) || f.write(json) != json.size())
        return {};
    return path;
}

const QByteArray kLlama3_8B =
    R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,
"intermediate_size":14336,"num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,
"vocab_size":128256,"max_position_embeddings":8192,"tie_word_embeddings":false,"torch_dtype":"bfloat16"})";

} // namespace

class TestPlanningModel : public QObject {
    Q_OBJECT

private slots:
    void configOnlyDerivesTensors()
    {
        QTemporaryDir dir;
        const QString path = writeConfig(dir, kLlama3_8B);
        QVERIFY(!path.isEmpty());
        auto opened = openModel(path.toStdString());
        QCOMPARE(opened->format(), ModelFormat::ConfigOnly);
        QVERIFY(opened->tensors().empty());

        const PlanningModel pm = makePlanningModel(opened, path.toStdString());
        QVERIFY(pm.derivationError.empty());
        QVERIFY(pm.model && pm.model != opened);
        QCOMPARE(pm.model->format(), ModelFormat::ConfigOnly);
        QCOMPARE(pm.model->tensors().size(), size_t(32 * 9 + 3));
        QCOMPARE(pm.layout.tensors.size(), pm.model->tensors().size());
        QVERIFY(pm.layout.derivedFromConfig);
        QCOMPARE(pm.model->parameterCount(), uint64_t(8030261248));
        QCOMPARE(pm.model->totalBytes(), uint64_t(8030261248) * 2); // BF16 checkpoint
        QCOMPARE(pm.model->config().hiddenSize, opened->config().hiddenSize);
    }

    void openedModelPassesThrough()
    {
        const auto opened = openModel(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        const PlanningModel pm = makePlanningModel(opened, QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        QCOMPARE(pm.model, opened);
        QCOMPARE(pm.layout.tensors.size(), opened->tensors().size());
        QVERIFY(!pm.layout.derivedFromConfig);
        QVERIFY(pm.derivationError.empty());
    }

    void unsupportedArchitectureKeepsTheOpenedModel()
    {
        QTemporaryDir dir;
        const QString path = writeConfig(dir, R"({"model_type":"no-such-architecture","hidden_size":64})");
        auto opened = openModel(path.toStdString());
        const PlanningModel pm = makePlanningModel(opened, path.toStdString());
        QCOMPARE(pm.model, opened);
        QVERIFY(!pm.derivationError.empty());
        QVERIFY(pm.layout.tensors.empty());
    }

    void nullModel() { QVERIFY(!makePlanningModel(nullptr, "x").model); }
};

QTEST_GUILESS_MAIN(TestPlanningModel)
#include "tst_planningmodel.moc"
