#include "app/gui/evaluatepanel.h"

#include "app/gui/openactions.h"
#include "app/gui/plansession.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/plan/budget.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "widgets/formatting.h"
#include "widgets/jobrunner.h"
#include "widgets/plandocument.h"
#include "widgets/plotutil.h"
#include "widgets/sensitivitystore.h"

#include <QCheckBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <qcustomplot.h>

namespace qs {

namespace {

constexpr int kKeptResults = 8;
enum Column { ColPlan, ColBpw, ColSize, ColPpl, ColPredicted, ColKld, ColSameTop, ColumnCount };

QTableWidgetItem* numberItem(const QString& text, double value)
{
    auto* item = new QTableWidgetItem(text);
    item->setData(Qt::UserRole, value);
    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}

} // namespace

QString EvaluatePanel::defaultTextPath()
{
    // Installed and in the source tree beside the sample model: samples/eval/stories.txt.
    const QString sample = OpenActions::samplePath();
    if (sample.isEmpty())
        return {};
    const QFileInfo text(QFileInfo(sample).absolutePath() + QStringLiteral("/../eval/stories.txt"));
    return text.exists() ? text.canonicalFilePath() : QString();
}

EvaluatePanel::EvaluatePanel(JobRunner* runner, PlanSession* session, ModelGetter model,
                             const SensitivityStore* sensitivity, QWidget* parent)
    : QWidget(parent), m_runner(runner), m_session(session), m_model(std::move(model)),
      m_text(new QLineEdit(defaultTextPath())), m_ctx(new QSpinBox), m_chunks(new QSpinBox),
      m_run(new QPushButton(tr("Evaluate Plan"))), m_compare(new QPushButton(tr("Compare Methods…"))),
      m_llamaArithmetic(new QCheckBox(tr("llama.cpp arithmetic"))),
      m_status(new QLabel), m_summary(new QLabel),
      m_plot(new QCustomPlot), m_table(new QTableWidget(0, ColumnCount)), m_sensitivity(sensitivity)
{
    setObjectName(QStringLiteral("view:evaluate"));
    auto* browse = new QPushButton(tr("Browse…"));
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString path =
            QFileDialog::getOpenFileName(this, tr("Evaluation Text"), m_text->text(),
                                         tr("Text files (*.txt *.raw *.md *.py);;All files (*)"));
        if (!path.isEmpty())
            m_text->setText(path);
    });
    m_ctx->setRange(4, 512);
    m_ctx->setValue(512);
    m_ctx->setToolTip(tr("Tokens per chunk (llama-perplexity's -c); at most the model's maximum context"));
    m_chunks->setRange(0, 99999);
    m_chunks->setSpecialValueText(tr("all"));
    m_chunks->setToolTip(tr("Evaluate at most this many chunks of the text"));
    connect(m_run, &QPushButton::clicked, this, [this] { evaluate(); });

    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("Text:")));
    controls->addWidget(m_text, 1);
    controls->addWidget(browse);
    controls->addWidget(toolbarLabel(tr("Context:")));
    controls->addWidget(m_ctx);
    controls->addWidget(toolbarLabel(tr("Chunks:")));
    controls->addWidget(m_chunks);
    auto* actions = new QHBoxLayout; // a second row: the window stays narrow enough for small screens
    actions->addWidget(m_run);
    auto* file = new QPushButton(tr("Evaluate File…"));
    file->setObjectName(QStringLiteral("evaluateFile"));
    file->setToolTip(tr("Evaluate a quantized file of this model (e.g. the Quantize dialog's RTN, GPTQ and AWQ "
                        "outputs) against the original: one row each, side by side with the plans"));
    connect(file, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Quantized Model"), QString(),
                                                          tr("Models (*.gguf *.safetensors);;All files (*)"));
        if (!path.isEmpty())
            evaluateFile(path.endsWith(QLatin1String(".safetensors")) ? QFileInfo(path).absolutePath() : path);
    });
    actions->addWidget(file);
    m_compare->setObjectName(QStringLiteral("compareMethods"));
    m_compare->setToolTip(tr("Quantize the current plan with round-to-nearest, GPTQ and AWQ (calibrated on a text "
                             "you choose) and evaluate each: one row per method"));
    connect(m_compare, &QPushButton::clicked, this, &EvaluatePanel::chooseAndCompareMethods);
    actions->addWidget(m_compare);
    m_llamaArithmetic->setObjectName(QStringLiteral("llamaArithmetic"));
    m_llamaArithmetic->setToolTip(tr("Round every matmul's input as llama.cpp's CPU backend does (Q8_0 / Q8_K / "
                                     "F16 by weight type, F16 KV cache), so the numbers compare with "
                                     "llama-perplexity's"));
    actions->addWidget(m_llamaArithmetic);
    actions->addStretch(1);

    m_summary->setTextFormat(Qt::RichText);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_summary->setAlignment(Qt::AlignTop | Qt::AlignLeft);
    m_summary->setMinimumWidth(300);
    m_status->setWordWrap(true);

    stylePlot(m_plot);
    m_plot->setMinimumHeight(80);
    m_plot->xAxis->setLabel(tr("chunk"));
    m_plot->yAxis->setLabel(tr("mean KL divergence (nats)"));
    m_plot->yAxis2->setLabel(tr("same top token (%)"));
    m_plot->yAxis2->setVisible(true);
    m_plot->yAxis2->setRange(0, 100);
    m_plot->legend->setVisible(true);
    putLegendAbove(m_plot, 2);

    m_table->setHorizontalHeaderLabels(
        {tr("Plan"), tr("Bits / weight"), tr("Size"), tr("PPL"), tr("Predicted KLD"), tr("Mean KLD"), tr("Same top %")});
    m_table->horizontalHeaderItem(ColPredicted)
        ->setToolTip(tr("The sum of the plan's measured ΔKL (Analysis › Measure ΔKL Sensitivity), beside the KL "
                        "divergence measured here"));
    m_table->horizontalHeader()->setSectionResizeMode(ColPlan, QHeaderView::Stretch);
    m_table->verticalHeader()->setVisible(false);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setToolTip(tr("The last %1 evaluations of this model, newest last").arg(kKeptResults));

    auto* top = new QSplitter(Qt::Horizontal);
    top->addWidget(m_summary);
    top->addWidget(m_plot);
    top->setStretchFactor(1, 1);
    auto* vertical = new QSplitter(Qt::Vertical);
    vertical->addWidget(top);
    vertical->addWidget(m_table);
    vertical->setStretchFactor(0, 3);
    vertical->setStretchFactor(1, 2);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(controls);
    layout->addLayout(actions);
    layout->addWidget(m_status);
    layout->addWidget(vertical, 1);
    m_status->setText(tr("Perplexity and KL divergence of the current plan against the original model, "
                         "computed as llama-perplexity --kl-divergence does."));

    connect(m_session->document(), &PlanDocument::layoutChanged, this, &EvaluatePanel::modelChanged);
}

EvaluatePanel::~EvaluatePanel()
{
    if (m_handle)
        m_handle->cancel();
}

void EvaluatePanel::modelChanged()
{
    if (m_handle)
        m_handle->cancel();
    const auto model = m_model();
    if (model.get() == m_shownModel)
        return;
    m_shownModel = model.get();
    m_baseline.reset();
    m_table->setRowCount(0);
    m_tableKey.clear();
    m_plot->clearPlottables();
    m_plot->replot();
    m_summary->clear();
    if (!model)
        return;
    try {
        const TransformerConfig config = transformerConfig(*model);
        const int maximum =
            config.contextLength > 0 ? int(std::min<uint64_t>(config.contextLength, 1 << 20)) : 1 << 20;
        m_ctx->setRange(4, maximum);
        m_ctx->setValue(std::min(512, maximum));
        m_run->setEnabled(true);
        m_compare->setEnabled(true);
        m_status->setText(tr("Context up to %1 tokens.").arg(maximum));
    } catch (const std::exception& e) {
        m_run->setEnabled(false);
        m_compare->setEnabled(false);
        m_status->setText(tr("This model cannot be evaluated: %1").arg(QString::fromUtf8(e.what())));
    }
}

QString EvaluatePanel::planName() const
{
    const QString key = m_session->planKey(); // the plan file once saved or opened, else the model
    if (key.endsWith(QLatin1String(".json"), Qt::CaseInsensitive))
        return QFileInfo(key).completeBaseName();
    const std::string& preset = m_session->document()->plan().preset();
    return preset.empty() ? tr("current plan") : QString::fromStdString(preset);
}

bool EvaluatePanel::ready()
{
    if (m_handle) {
        m_status->setText(tr("An evaluation is already running."));
        return false;
    }
    const auto model = m_model();
    if (!model) {
        m_status->setText(tr("Open a model first."));
        return false;
    }
    if (model.get() != m_shownModel)
        modelChanged();
    if (m_text->text().isEmpty() || !QFileInfo(m_text->text()).isFile()) {
        m_status->setText(tr("Choose a text file to evaluate on."));
        return false;
    }
    return true;
}

bool EvaluatePanel::evaluate()
{
    if (!ready())
        return false;
    const PlanDocument* doc = m_session->document();
    EvalParams params;
    params.plan = doc->plan();
    const WeightSummary weights = summarizeWeights(doc->layout(), planBytesFn(doc->plan()));
    return start(std::move(params), planName(), weights, predictedKl(doc->plan()));
}

bool EvaluatePanel::evaluateFile(const QString& path)
{
    if (!ready())
        return false;
    EvalParams params;
    try {
        params.quantizedModel = openModel(path.toStdString()); // memory-mapped: reads headers only
    } catch (const std::exception& e) {
        m_status->setText(tr("Cannot open %1: %2").arg(QFileInfo(path).fileName(), QString::fromStdString(e.what())));
        return false;
    }
    const WeightSummary weights = summarizeWeights(layoutFromModel(*params.quantizedModel));
    return start(std::move(params), QFileInfo(path).fileName(), weights, std::nullopt);
}

EvalParams EvaluatePanel::tabInput() const
{
    EvalParams p;
    p.model = m_model();
    p.textFile = m_text->text().toStdString();
    p.ctx = uint32_t(m_ctx->value());
    p.maxChunks = uint32_t(m_chunks->value());
    p.baseline = m_baseline;
    p.llamaCppActivations = m_llamaArithmetic->isChecked();
    return p;
}

bool EvaluatePanel::start(EvalParams params, const QString& name, const WeightSummary& weights,
                          std::optional<double> predicted)
{
    const EvalParams input = tabInput();
    params.model = input.model;
    params.textFile = input.textFile;
    params.ctx = input.ctx;
    params.maxChunks = input.maxChunks;
    params.baseline = input.baseline;
    params.llamaCppActivations = input.llamaCppActivations;
    m_runPlanName = name;
    m_runBytes = weights.bytes;
    m_runPredicted = predicted;
    m_runBpw = weights.parameters ? 8.0 * double(weights.bytes) / double(weights.parameters) : 0.0;
    m_lastParams = params;
    m_job = std::make_shared<EvalJob>(std::move(params));
    m_handle = m_runner->start(m_job);
    connect(m_handle, &JobHandle::finished, this, &EvaluatePanel::onFinished);
    m_run->setEnabled(false);
    m_compare->setEnabled(false);
    m_status->setText(tr("Evaluating %1…").arg(m_runPlanName));
    return true;
}

void EvaluatePanel::chooseAndCompareMethods()
{
    QDialog dialog(this);
    dialog.setWindowTitle(tr("Compare Methods"));
    auto* text = new QLineEdit(m_text->text());
    auto* browse = new QPushButton(tr("Browse…"));
    connect(browse, &QPushButton::clicked, &dialog, [&dialog, text] {
        const QString path = QFileDialog::getOpenFileName(&dialog, tr("Calibration Text"), text->text(),
                                                          tr("Text files (*.txt *.raw *.md *.py);;All files (*)"));
        if (!path.isEmpty())
            text->setText(path);
    });
    auto* row = new QHBoxLayout;
    row->addWidget(text, 1);
    row->addWidget(browse);
    auto* rtn = new QCheckBox(tr("Round to nearest"));
    auto* gptq = new QCheckBox(tr("GPTQ"));
    auto* awq = new QCheckBox(tr("AWQ"));
    for (QCheckBox* box : {rtn, gptq, awq})
        box->setChecked(true);
    auto* methods = new QHBoxLayout;
    for (QCheckBox* box : {rtn, gptq, awq})
        methods->addWidget(box);
    auto* note = new QLabel(tr("Each method quantizes the current plan into a temporary file (GGUF for a GGUF model, "
                               "else a fake-quant checkpoint) that is evaluated on the text above this tab and then "
                               "deleted. Calibrate on other text than you evaluate on for an honest comparison."));
    note->setWordWrap(true);
    auto* form = new QFormLayout;
    form->addRow(tr("Calibration text:"), row);
    form->addRow(tr("Methods:"), methods);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    auto* layout = new QVBoxLayout(&dialog);
    layout->addWidget(note);
    layout->addLayout(form);
    layout->addWidget(buttons);
    dialog.resize(560, dialog.sizeHint().height());
    if (dialog.exec() != QDialog::Accepted)
        return;
    std::vector<QuantMethod> chosen;
    if (rtn->isChecked())
        chosen.push_back(QuantMethod::Rtn);
    if (gptq->isChecked())
        chosen.push_back(QuantMethod::Gptq);
    if (awq->isChecked())
        chosen.push_back(QuantMethod::Awq);
    compareMethods(text->text().trimmed(), std::move(chosen));
}

bool EvaluatePanel::compareMethods(const QString& calibrationText, std::vector<QuantMethod> methods)
{
    if (!ready())
        return false;
    if (methods.empty()) {
        m_status->setText(tr("Choose at least one method to compare."));
        return false;
    }
    m_lastParams = tabInput(); // what the rows are keyed on (text, context, chunks, arithmetic)
    MethodComparisonParams params;
    params.model = m_lastParams.model;
    params.plan = m_session->document()->plan();
    params.methods = std::move(methods);
    params.calibrationFile = calibrationText.toStdString();
    params.textFile = m_lastParams.textFile;
    params.ctx = m_lastParams.ctx;
    params.maxChunks = m_lastParams.maxChunks;
    params.baseline = m_lastParams.baseline;
    params.llamaCppActivations = m_lastParams.llamaCppActivations;
    m_compareJob = std::make_shared<MethodComparisonJob>(std::move(params));
    m_handle = m_runner->start(m_compareJob);
    connect(m_handle, &JobHandle::finished, this, &EvaluatePanel::onMethodsFinished);
    m_run->setEnabled(false);
    m_compare->setEnabled(false);
    m_status->setText(tr("Quantizing %1 with each method and evaluating…").arg(planName()));
    return true;
}

void EvaluatePanel::onMethodsFinished(JobStatus status, const QString& error)
{
    m_handle = nullptr;
    m_run->setEnabled(true);
    m_compare->setEnabled(true);
    if (status == JobStatus::Succeeded) {
        m_lastComparison = m_compareJob->takeResult();
        if (m_lastComparison.baseline)
            m_baseline = m_lastComparison.baseline;
        const uint64_t parameters = m_session->document()->layout().parameterCount();
        QStringList notes;
        for (const MethodOutcome& o : m_lastComparison.outcomes) {
            const QString label = QString::fromLatin1(quantMethodLabel(o.method));
            if (!o.ok()) {
                notes << tr("%1 not evaluated: %2").arg(label, QString::fromStdString(o.error));
                continue;
            }
            m_last = o.eval;
            m_runPlanName = planName() + QStringLiteral(" · ") + label;
            m_runBytes = o.weightBytes;
            m_runBpw = parameters ? 8.0 * double(o.weightBytes) / double(parameters) : 0.0;
            m_runPredicted.reset();
            showResult(m_last);
            addComparisonRow(m_last);
        }
        m_status->setText(tr("Methods compared on %1 (written as %2, then deleted).")
                              .arg(planName(), QString::fromStdString(m_lastComparison.target)) +
                          (notes.isEmpty() ? QString() : QStringLiteral(" ") + notes.join(QStringLiteral("; "))));
    } else if (status == JobStatus::Cancelled) {
        m_status->setText(tr("Method comparison cancelled."));
    } else {
        m_status->setText(tr("Method comparison failed: %1").arg(error));
    }
    m_compareJob.reset();
    emit evaluated(status, error);
}

void EvaluatePanel::onFinished(JobStatus status, const QString& error)
{
    m_handle = nullptr;
    m_run->setEnabled(true);
    m_compare->setEnabled(true);
    if (status == JobStatus::Succeeded) {
        m_last = m_job->takeResult();
        m_baseline = m_last.baseline;
        showResult(m_last);
        addComparisonRow(m_last);
        m_status->setText(
            tr("%1 chunks of %2 tokens, %3 positions scored in %4 s%5.")
                .arg(m_last.chunks)
                .arg(m_last.ctx)
                .arg(m_last.positions)
                .arg(m_last.seconds, 0, 'f', 1)
                .arg(m_last.baselineReused ? tr(" (original model's results reused)") : QString()));
    } else if (status == JobStatus::Cancelled) {
        m_status->setText(tr("Evaluation cancelled."));
    } else {
        m_status->setText(tr("Evaluation failed: %1").arg(error));
    }
    m_job.reset();
    emit evaluated(status, error);
}

void EvaluatePanel::showResult(const EvalResult& r)
{
    const auto row = [](const QString& name, const QString& value) {
        return QStringLiteral("<tr><td>%1</td><td align=right>&nbsp;&nbsp;<b>%2</b></td></tr>")
            .arg(name, value);
    };
    QString html = QStringLiteral("<h3>%1</h3><table>").arg(m_runPlanName.toHtmlEscaped());
    html += row(tr("PPL original"), QString::number(r.perplexity, 'f', 4));
    html += row(tr("PPL quantized"), QString::number(r.perplexityQuantized, 'f', 4));
    html += row(tr("PPL change"),
                QStringLiteral("%1 %").arg(100.0 * (r.perplexityQuantized / r.perplexity - 1.0), 0, 'f', 2));
    if (m_runPredicted)
        html += row(tr("Predicted KLD"), QString::number(*m_runPredicted, 'f', 6));
    html += row(tr("Mean KLD"), QString::number(r.kldMean, 'f', 6));
    html += row(tr("Median KLD"), QString::number(r.kldMedian, 'f', 6));
    html += row(tr("99% KLD"), QString::number(r.kldP99, 'f', 6));
    html += row(tr("Max KLD"), QString::number(r.kldMax, 'f', 6));
    html += row(tr("Same top token"), QStringLiteral("%1 %").arg(100.0 * r.sameTop, 0, 'f', 2));
    html += row(tr("Bits / weight"), QString::number(m_runBpw, 'f', 2));
    html += row(tr("Weights"), formatBytes(m_runBytes));
    html += QStringLiteral("</table>");
    if (!r.kldExact)
        html += tr("<p>KL over the top %1 tokens of the original plus the rest as one bucket (a lower "
                   "bound).</p>")
                    .arg(r.baselineTopK);
    m_summary->setText(html);

    m_plot->clearPlottables();
    auto* bars = new QCPBars(m_plot->xAxis, m_plot->yAxis);
    bars->setName(tr("mean KL divergence"));
    bars->setPen(Qt::NoPen);
    bars->setBrush(seriesColor(0));
    auto* same = new QCPGraph(m_plot->xAxis, m_plot->yAxis2);
    same->setName(tr("same top token"));
    same->setPen(QPen(seriesColor(1), 2));
    same->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 5));
    double maxKld = 0;
    for (size_t i = 0; i < r.perChunk.size(); ++i) {
        bars->addData(double(i + 1), r.perChunk[i].kldMean);
        same->addData(double(i + 1), 100.0 * r.perChunk[i].sameTop);
        maxKld = std::max(maxKld, r.perChunk[i].kldMean);
    }
    bars->setWidth(r.perChunk.size() > 1 ? 0.7 : 0.4);
    m_plot->xAxis->setRange(0.4, double(r.perChunk.size()) + 0.6);
    m_plot->yAxis->setRange(0, maxKld > 0 ? maxKld * 1.15 : 1e-3);
    m_plot->yAxis2->setRange(0, 105);
    m_plot->replot();
}

std::optional<double> EvaluatePanel::predictedKl(const Plan& plan) const
{
    // The window's sensitivity matrix, when it holds measured ΔKL for every planned tensor.
    const SensitivityStore* store = m_sensitivity;
    if (!store || store->measure() != SensitivityStore::Measure::DeltaKl || store->isRunning())
        return std::nullopt;
    const PlanErrorSummary e =
        planError(plan, m_session->document()->layout(), errorTableFromSensitivity(store->results()));
    if (e.proxied > 0 || e.missing > 0)
        return std::nullopt;
    return e.error;
}

void EvaluatePanel::addComparisonRow(const EvalResult& r)
{
    // The original model first, once per model (its numbers do not depend on the plan).
    const auto addRow = [this](const QString& name, double bpw, uint64_t bytes, double ppl,
                               std::optional<double> predicted, double kld, double same) {
        const int row = m_table->rowCount();
        m_table->insertRow(row);
        m_table->setItem(row, ColPlan, new QTableWidgetItem(name));
        m_table->setItem(row, ColBpw, numberItem(QString::number(bpw, 'f', 2), bpw));
        m_table->setItem(row, ColSize, numberItem(formatBytes(bytes), double(bytes)));
        m_table->setItem(row, ColPpl, numberItem(QString::number(ppl, 'f', 4), ppl));
        m_table->setItem(row, ColPredicted, predicted ? numberItem(QString::number(*predicted, 'f', 6), *predicted)
                                                      : numberItem(QStringLiteral("—"), -1));
        m_table->setItem(row, ColKld, numberItem(QString::number(kld, 'f', 6), kld));
        m_table->setItem(row, ColSameTop, numberItem(QString::number(100.0 * same, 'f', 2), 100.0 * same));
    };
    // Rows compare only on the same text, context and chunk count: other input starts a new table.
    const QString key = QStringLiteral("%1|%2|%3|%4")
                            .arg(QString::fromStdString(m_lastParams.textFile.string()))
                            .arg(r.ctx)
                            .arg(r.chunks)
                            .arg(m_lastParams.llamaCppActivations);
    if (key != m_tableKey)
        m_table->setRowCount(0);
    m_tableKey = key;
    if (m_table->rowCount() == 0) {
        const WeightSummary stored = summarizeWeights(m_session->document()->layout());
        const double bpw = stored.parameters ? 8.0 * double(stored.bytes) / double(stored.parameters) : 0.0;
        addRow(tr("original (stored weights)"), bpw, stored.bytes, r.perplexity, 0.0, 0.0, 1.0);
        m_table->item(0, ColPlan)->setData(Qt::UserRole, QStringLiteral("original"));
    }
    addRow(m_runPlanName, m_runBpw, m_runBytes, r.perplexityQuantized, m_runPredicted, r.kldMean, r.sameTop);
    while (m_table->rowCount() > kKeptResults + 1)
        m_table->removeRow(1);
    m_table->scrollToBottom();
}

} // namespace qs
