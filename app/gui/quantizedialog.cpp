#include "app/gui/quantizedialog.h"

#include "app/gui/calibration.h"
#include "app/gui/comparedialog.h"
#include "app/gui/mainwindow.h"
#include "core/model/model.h"
#include "widgets/formatting.h"
#include "widgets/jobrunner.h"
#include "widgets/plandocument.h"
#include "widgets/quantizeresultmodel.h"

#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QDesktopServices>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QSortFilterProxyModel>
#include <QSpinBox>
#include <QTableView>
#include <QThread>
#include <QUrl>
#include <QVBoxLayout>

#include <map>

namespace qs {

namespace {

constexpr std::array<QuantizeTarget, 4> kTargets{QuantizeTarget::Gguf, QuantizeTarget::CompressedTensors,
                                                 QuantizeTarget::Gptq, QuantizeTarget::FakeQuant};

int indexOf(QuantizeTarget target)
{
    return int(target);
}

QString targetTitle(QuantizeTarget target)
{
    switch (target) {
    case QuantizeTarget::Gguf:
        return QuantizeDialog::tr("GGUF — llama.cpp (byte-identical to llama-quantize)");
    case QuantizeTarget::CompressedTensors:
        return QuantizeDialog::tr("compressed-tensors — vLLM");
    case QuantizeTarget::Gptq:
        return QuantizeDialog::tr("GPTQ — GPTQModel, transformers, vLLM");
    case QuantizeTarget::FakeQuant:
        return QuantizeDialog::tr("Fake-quant — the model's own format, dequantized values");
    }
    return {};
}

bool isCheckpoint(QuantizeTarget target)
{
    return target != QuantizeTarget::Gguf;
}

// The model's folder (a checkpoint folder, or the folder of a single file).
QString modelFolder(const QString& modelPath)
{
    const QFileInfo info(modelPath);
    return info.isDir() ? info.absoluteFilePath() : info.absolutePath();
}

QString exactBytes(uint64_t bytes)
{
    return QuantizeDialog::tr("%1 bytes (%2)").arg(formatExact(bytes), formatBytes(bytes));
}

} // namespace

QuantizeDialog* QuantizeDialog::showFor(MainWindow* window)
{
    auto* dialog = window->findChild<QuantizeDialog*>(QStringLiteral("quantizeDialog"));
    if (!dialog)
        dialog = new QuantizeDialog(window);
    dialog->refresh();
    dialog->show();
    dialog->raise();
    dialog->activateWindow();
    return dialog;
}

QuantizeDialog::QuantizeDialog(MainWindow* window) : QDialog(window), m_window(window)
{
    setObjectName(QStringLiteral("quantizeDialog"));
    setWindowTitle(tr("Quantize"));
    setModal(false);
    auto* layout = new QVBoxLayout(this);

    m_intro = new QLabel;
    m_intro->setWordWrap(true);
    layout->addWidget(m_intro);

    auto* targets = new QGroupBox(tr("Target"));
    auto* grid = new QGridLayout(targets);
    grid->setColumnStretch(1, 1);
    for (QuantizeTarget t : kTargets) {
        const int i = indexOf(t);
        m_targetButtons[i] = new QRadioButton(targetTitle(t));
        m_targetButtons[i]->setObjectName(QStringLiteral("target:") + QLatin1String(quantizeTargetName(t)));
        m_reasonLabels[i] = new QLabel;
        m_reasonLabels[i]->setStyleSheet(QStringLiteral("color: #777;"));
        m_reasonLabels[i]->setWordWrap(true);
        grid->addWidget(m_targetButtons[i], i, 0);
        grid->addWidget(m_reasonLabels[i], i, 1);
        connect(m_targetButtons[i], &QRadioButton::toggled, this, [this, t](bool on) {
            if (!on)
                return;
            m_target = t;
            updateGgufOptions();
            updateDefaultPath();
            updatePrediction();
        });
    }
    layout->addWidget(targets);

    auto* form = new QFormLayout;
    auto pathRow = [this](QLineEdit* edit, const QString& name, void (QuantizeDialog::*browse)()) {
        auto* row = new QHBoxLayout;
        edit->setObjectName(name);
        row->addWidget(edit, 1);
        auto* button = new QPushButton(tr("Browse…"));
        button->setObjectName(name + QStringLiteral("Browse"));
        connect(button, &QPushButton::clicked, this, browse);
        row->addWidget(button);
        return std::pair{row, button};
    };
    m_output = new QLineEdit;
    connect(m_output, &QLineEdit::textEdited, this, [this] { m_outputChosen = true; });
    form->addRow(tr("Output:"), pathRow(m_output, QStringLiteral("output"), &QuantizeDialog::browseOutput).first);
    m_importance = new QLineEdit;
    m_importance->setPlaceholderText(tr("optional: a llama.cpp imatrix (GGUF or .dat)"));
    connect(m_importance, &QLineEdit::textEdited, this, [this] { m_importanceChosen = true; });
    auto importanceRow = pathRow(m_importance, QStringLiteral("importance"), &QuantizeDialog::browseImportance);
    m_importanceBrowse = importanceRow.second;
    form->addRow(tr("Importance file:"), importanceRow.first);
    m_calibration = new QLineEdit;
    m_calibration->setPlaceholderText(tr("a text like the model's input: needed by GPTQ and AWQ tiers"));
    m_calibration->setToolTip(tr("A text like the model's input. For GPTQ tiers also an activation statistics file "
                                 "with Hessians (.h5, from calibrate --out F.h5 --hessians): no calibration pass"));
    auto calibrationRow = pathRow(m_calibration, QStringLiteral("calibration"), &QuantizeDialog::browseCalibration);
    m_calibrationBrowse = calibrationRow.second;
    m_methodLabel = new QLabel;
    m_methodLabel->setObjectName(QStringLiteral("methods"));
    m_methodLabel->setWordWrap(true);
    form->addRow(tr("Methods:"), m_methodLabel);
    form->addRow(tr("Calibration text:"), calibrationRow.first);
    m_threads = new QSpinBox;
    m_threads->setRange(0, std::max(1, QThread::idealThreadCount()) * 4);
    m_threads->setSpecialValueText(tr("Automatic (%1)").arg(std::max(1, QThread::idealThreadCount())));
    form->addRow(tr("Threads:"), m_threads);
    m_split = new QDoubleSpinBox;
    m_split->setObjectName(QStringLiteral("splitGiB"));
    m_split->setRange(0, 4096);
    m_split->setDecimals(4);
    m_split->setSingleStep(1);
    m_split->setSuffix(tr(" GiB"));
    m_split->setSpecialValueText(tr("one file"));
    m_split->setToolTip(tr("GGUF: split into shards of at most this much tensor data, named as llama.cpp's "
                           "gguf-split names them (-00001-of-0000N.gguf), like --split-max-size"));
    form->addRow(tr("Split (GGUF):"), m_split);
    m_requantize = new QCheckBox(tr("Re-quantize tensors that are already quantized (lower quality than "
                                    "from the original weights)"));
    m_requantize->setObjectName(QStringLiteral("allowRequantize"));
    connect(m_requantize, &QCheckBox::toggled, this, &QuantizeDialog::refresh);
    form->addRow(QString(), m_requantize);
    m_prediction = new QLabel;
    form->addRow(tr("Predicted:"), m_prediction);
    layout->addLayout(form);

    m_progress = new QProgressBar;
    m_progress->setRange(0, 1000);
    m_progress->setTextVisible(true);
    m_progress->hide();
    layout->addWidget(m_progress);
    m_message = new QLabel;
    m_message->setObjectName(QStringLiteral("quantizeMessage"));
    m_message->setWordWrap(true);
    m_message->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_message);

    m_summary = new QWidget;
    auto* summaryLayout = new QVBoxLayout(m_summary);
    summaryLayout->setContentsMargins(0, 0, 0, 0);
    m_resultModel = new QuantizeResultModel(this);
    auto* proxy = new QSortFilterProxyModel(this);
    proxy->setSourceModel(m_resultModel);
    proxy->setSortRole(QuantizeResultModel::SortRole);
    m_table = new QTableView;
    m_table->setObjectName(QStringLiteral("quantizeResults"));
    m_table->setModel(proxy);
    m_table->setSortingEnabled(true);
    m_table->sortByColumn(-1, Qt::AscendingOrder); // the model's order until a header is clicked
    m_table->verticalHeader()->hide();
    m_table->verticalHeader()->setDefaultSectionSize(m_table->fontMetrics().height() + 6);
    m_table->horizontalHeader()->setSectionResizeMode(QuantizeResultModel::NameColumn, QHeaderView::Stretch);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setAlternatingRowColors(true);
    summaryLayout->addWidget(m_table, 1);
    auto* resultButtons = new QHBoxLayout;
    m_openButton = new QPushButton(tr("Open Result"));
    m_openButton->setObjectName(QStringLiteral("openResult"));
    m_openButton->setToolTip(tr("Open the quantized model in the workbench"));
    connect(m_openButton, &QPushButton::clicked, this, [this] {
        if (!m_resultPath.isEmpty())
            m_window->openPath(m_resultPath);
    });
    m_folderButton = new QPushButton(tr("Show in Folder"));
    m_folderButton->setObjectName(QStringLiteral("showInFolder"));
    connect(m_folderButton, &QPushButton::clicked, this, [this] {
        if (m_resultPath.isEmpty())
            return;
        const QFileInfo info(m_resultPath);
        QDesktopServices::openUrl(
            QUrl::fromLocalFile(info.isDir() ? info.absoluteFilePath() : info.absolutePath()));
    });
    auto* compareButton = new QPushButton(tr("Compare with Original"));
    compareButton->setObjectName(QStringLiteral("compareWithOriginal"));
    compareButton->setToolTip(tr("Every value of every tensor against the open model: SQNR and the difference's "
                                 "histogram"));
    connect(compareButton, &QPushButton::clicked, this, [this] {
        if (m_resultPath.isEmpty())
            return;
        CompareDialog* dialog = CompareDialog::showFor(m_window);
        dialog->setCandidate(m_resultPath);
        dialog->run();
    });
    resultButtons->addWidget(m_openButton);
    resultButtons->addWidget(compareButton);
    resultButtons->addWidget(m_folderButton);
    resultButtons->addStretch(1);
    summaryLayout->addLayout(resultButtons);
    m_summary->hide();
    layout->addWidget(m_summary, 100);
    layout->addStretch(1); // takes the room while there is no summary (the summary's stretch dwarfs it)

    auto* buttons = new QHBoxLayout;
    buttons->addStretch(1);
    m_runButton = new QPushButton(tr("Quantize"));
    m_runButton->setObjectName(QStringLiteral("runQuantize"));
    m_runButton->setDefault(true);
    connect(m_runButton, &QPushButton::clicked, this, [this] { run(); });
    m_stopButton = new QPushButton(tr("Stop"));
    m_stopButton->setObjectName(QStringLiteral("stopQuantize"));
    m_stopButton->setEnabled(false);
    connect(m_stopButton, &QPushButton::clicked, this, &QuantizeDialog::cancelRun);
    auto* close = new QPushButton(tr("Close"));
    connect(close, &QPushButton::clicked, this, &QDialog::hide);
    buttons->addWidget(m_runButton);
    buttons->addWidget(m_stopButton);
    buttons->addWidget(close);
    layout->addLayout(buttons);

    // The targets follow every edit of the plan and every model opened.
    PlanDocument* plan = window->planDocument();
    connect(plan, &PlanDocument::planChanged, this, &QuantizeDialog::refresh);
    connect(plan, &PlanDocument::layoutChanged, this, [this] {
        m_outputChosen = false;
        refresh();
    });
    resize(760, 600);
}

void QuantizeDialog::refresh()
{
    const auto model = m_window->model();
    const Plan& plan = m_window->planDocument()->plan();
    for (QuantizeTarget t : kTargets) {
        const int i = indexOf(t);
        QStringList problems;
        if (!model)
            problems << tr("no model is open");
        else if (model->format() == ModelFormat::ConfigOnly || model->files().empty())
            problems << tr("the model has no weights (opened from its config.json)");
        else
            for (const auto& p : quantizeTargetProblems(t, *model, plan, m_requantize->isChecked()))
                problems << QString::fromStdString(p).replace(QStringLiteral("needs --allow-requantize"),
                                                              tr("needs “Re-quantize” ticked"));
        m_reasons[i] = problems.isEmpty() ? QString() : problems.front();
        if (problems.size() > 1)
            m_reasons[i] += QLatin1Char(' ') + tr("(and %1 more)").arg(problems.size() - 1);
        const QString tip = problems.mid(0, 20).join(QLatin1Char('\n'));
        m_targetButtons[i]->setEnabled(problems.isEmpty() && !isRunning());
        m_targetButtons[i]->setToolTip(tip);
        m_reasonLabels[i]->setText(m_reasons[i]);
        m_reasonLabels[i]->setToolTip(tip);
    }
    if (!isTargetEnabled(m_target))
        for (QuantizeTarget t : kTargets)
            if (isTargetEnabled(t)) {
                m_target = t;
                break;
            }
    m_targetButtons[indexOf(m_target)]->setChecked(true);
    // The session's importance (Analysis › Calibrate / Load Importance) unless the user chose a file.
    if (!m_importanceChosen && m_window->calibration())
        m_importance->setText(m_window->calibration()->importanceFile());
    updateGgufOptions();
    const QString name = model ? QFileInfo(m_window->modelPath()).fileName() : QString();
    m_intro->setText(model ? tr("Writes <b>%1</b> quantized with the current plan (%2 planned). Only the "
                                "targets that can store the plan for this model are enabled.")
                                 .arg(name.toHtmlEscaped(),
                                      countNoun(plan.assignments().size(), "tensor", "tensors"))
                           : tr("Open a model and make a plan first."));
    updateDefaultPath();
    updatePrediction();
    m_runButton->setEnabled(!isRunning() && isTargetEnabled(m_target));
}

void QuantizeDialog::updateGgufOptions()
{
    const bool gguf = m_target == QuantizeTarget::Gguf;
    m_importance->setEnabled(gguf);
    m_importanceBrowse->setEnabled(gguf);
    m_requantize->setEnabled(gguf);
    m_split->setEnabled(gguf);
    // The plan's tier methods (Plan tab: a tier's menu › Quantization Method).
    const Plan& plan = m_window->planDocument()->plan();
    std::map<QuantMethod, QStringList> tiers;
    for (const auto& [tier, method] : plan.tierMethods()) {
        size_t members = 0;
        for (const auto& [tensor, format] : plan.assignments())
            members += plan.tierIndex(format) == plan.tierIndex(tier);
        if (members > 0)
            tiers[method] << tr("%1 (%2)").arg(QString::fromStdString(tier), countNoun(members, "tensor", "tensors"));
    }
    QStringList parts;
    for (const auto& [method, names] : tiers)
        parts << tr("%1 on %2").arg(QLatin1String(quantMethodLabel(method)), names.join(QStringLiteral(", ")));
    m_methodLabel->setText(parts.isEmpty() ? tr("round to nearest (set a tier's method on the Plan tab)")
                                           : parts.join(QStringLiteral("; ")) +
                                                 tr("; the other tiers round to nearest"));
    m_calibration->setEnabled(!parts.isEmpty());
    m_calibrationBrowse->setEnabled(!parts.isEmpty());
}

void QuantizeDialog::setSplitGiB(double gib)
{
    m_split->setValue(gib);
}

void QuantizeDialog::setCalibrationFile(const QString& path)
{
    m_calibration->setText(path);
}

void QuantizeDialog::browseCalibration()
{
    const QString path = QFileDialog::getOpenFileName(
        this, tr("Calibration Text"), m_calibration->text(),
        tr("Text files (*.txt *.raw *.md *.py);;GPTQ: stored Hessians (*.h5);;All files (*)"));
    if (!path.isEmpty())
        m_calibration->setText(QDir::toNativeSeparators(path));
}

bool QuantizeDialog::isTargetEnabled(QuantizeTarget target) const
{
    return m_reasons[indexOf(target)].isEmpty() && m_window->model() != nullptr;
}

QString QuantizeDialog::targetReason(QuantizeTarget target) const
{
    return m_reasons[indexOf(target)];
}

bool QuantizeDialog::setTarget(QuantizeTarget target)
{
    if (!isTargetEnabled(target) || isRunning())
        return false;
    m_targetButtons[indexOf(target)]->setChecked(true);
    return m_target == target;
}

QString QuantizeDialog::outputPath() const
{
    return m_output->text().trimmed();
}

void QuantizeDialog::setOutputPath(const QString& path)
{
    m_output->setText(path);
    m_outputChosen = true;
}

void QuantizeDialog::setImportanceFile(const QString& path)
{
    m_importanceChosen = true;
    m_importance->setText(path);
}

void QuantizeDialog::setAllowRequantize(bool allow)
{
    m_requantize->setChecked(allow);
}

void QuantizeDialog::setThreads(int threads)
{
    m_threads->setValue(threads);
}

void QuantizeDialog::updateDefaultPath()
{
    if (m_outputChosen || !m_window->model())
        return;
    // "<model>-<preset>.gguf" next to the model; "<folder>-<target>" next to a checkpoint folder.
    QString suffix = QString::fromStdString(m_window->planDocument()->plan().preset());
    suffix.remove(QStringLiteral("llama.cpp-"));
    if (suffix.isEmpty())
        suffix = QStringLiteral("quantized");
    const QString modelPath = m_window->modelPath();
    QString path;
    if (isCheckpoint(m_target)) {
        const QDir folder(modelFolder(modelPath));
        path = QFileInfo(folder.absolutePath()).absolutePath() + QLatin1Char('/') + folder.dirName() +
               QLatin1Char('-') + QLatin1String(quantizeTargetName(m_target));
    } else {
        const QFileInfo info(modelPath);
        path = info.absolutePath() + QLatin1Char('/') + info.completeBaseName() + QLatin1Char('-') + suffix +
               QStringLiteral(".gguf");
    }
    m_output->setText(QDir::toNativeSeparators(path));
}

void QuantizeDialog::updatePrediction()
{
    const auto model = m_window->model();
    if (!model || !isTargetEnabled(m_target)) {
        m_prediction->setText(tr("—"));
        return;
    }
    uint64_t bytes = 0;
    for (const auto& t : model->tensors())
        bytes += predictedTensorBytes(m_target, m_window->planDocument()->plan(), t);
    m_prediction->setText(tr("%1 of tensor data (the model has %2)")
                              .arg(exactBytes(bytes), formatBytes(model->totalBytes())));
}

void QuantizeDialog::browseOutput()
{
    QString path;
    if (isCheckpoint(m_target))
        path = QFileDialog::getSaveFileName(this, tr("New Checkpoint Folder"), outputPath(), QString(), nullptr,
                                            QFileDialog::DontConfirmOverwrite);
    else
        path = QFileDialog::getSaveFileName(this, tr("Quantized GGUF"), outputPath(),
                                            tr("GGUF models (*.gguf)"));
    if (!path.isEmpty())
        setOutputPath(QDir::toNativeSeparators(path));
}

void QuantizeDialog::browseImportance()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Importance Matrix"), m_importance->text(),
                                                      tr("Importance matrices (*.gguf *.dat);;All files (*)"));
    if (!path.isEmpty())
        setImportanceFile(QDir::toNativeSeparators(path));
}

void QuantizeDialog::showError(const QString& text)
{
    // A validation failure lists every problem: the first ones here, all of them in the tooltip.
    constexpr int kShownLines = 12;
    QStringList lines = text.split(QLatin1Char('\n'));
    if (lines.size() > kShownLines) {
        const qsizetype more = lines.size() - kShownLines;
        lines = lines.mid(0, kShownLines);
        lines << tr("… and %1 more (hover to see all)").arg(more);
    }
    m_message->setStyleSheet(QStringLiteral("color: #b00020;"));
    m_message->setTextFormat(Qt::PlainText);
    m_message->setText(lines.join(QLatin1Char('\n')));
    m_message->setToolTip(text);
}

QString QuantizeDialog::messageText() const
{
    return m_message->text();
}

const QuantizeResult* QuantizeDialog::result() const
{
    return m_hasResult && m_job ? &m_job->result() : nullptr;
}

bool QuantizeDialog::run()
{
    if (isRunning())
        return false;
    refresh();
    const auto model = m_window->model();
    if (!model || !isTargetEnabled(m_target)) {
        showError(model ? tr("%1 cannot write this plan: %2")
                              .arg(QLatin1String(quantizeTargetName(m_target)), targetReason(m_target))
                        : tr("Open a model first."));
        return false;
    }
    const QString output = outputPath();
    if (output.isEmpty()) {
        showError(tr("Choose where to write the output."));
        return false;
    }
    QuantizeParams params;
    params.model = model;
    params.plan = m_window->planDocument()->plan();
    params.target = m_target;
    params.output = QDir::fromNativeSeparators(output).toStdString();
    if (m_target == QuantizeTarget::Gguf && !m_importance->text().trimmed().isEmpty())
        params.importanceFile = QDir::fromNativeSeparators(m_importance->text().trimmed()).toStdString();
    params.threads = unsigned(m_threads->value());
    params.allowRequantize = m_target == QuantizeTarget::Gguf && m_requantize->isChecked();
    if (m_target == QuantizeTarget::Gguf && m_split->value() > 0)
        params.splitMaxBytes = std::max<uint64_t>(1, uint64_t(m_split->value() * double(uint64_t{1} << 30)));
    if (m_calibration->isEnabled() && !m_calibration->text().trimmed().isEmpty())
        params.calibrationFile = QDir::fromNativeSeparators(m_calibration->text().trimmed()).toStdString();
    // An activation statistics file with XᵀX (calibrate --out F.h5 --hessians): GPTQ from stored Hessians.
    if (params.calibrationFile.extension() == ".h5") {
        params.gptqHessiansFile = params.calibrationFile;
        params.calibrationFile.clear();
    }
    if (m_calibration->isEnabled() && params.calibrationFile.empty() && params.gptqHessiansFile.empty()) {
        showError(tr("The plan's GPTQ / AWQ tiers need a calibration text: a text like the model's input."));
        return false;
    }

    m_hasResult = false;
    m_resultPath.clear();
    m_resultModel->setTensors({});
    m_summary->hide();
    m_message->setStyleSheet(QString());
    m_message->setToolTip(QString());
    m_message->setTextFormat(Qt::PlainText);
    m_message->setText(tr("Quantizing to %1…").arg(output));
    m_job = std::make_shared<QuantizeJob>(std::move(params));
    if (m_jobHook)
        m_jobHook(*m_job);
    m_handle = m_window->jobRunner()->start(m_job);
    connect(m_handle, &JobHandle::progressChanged, this, &QuantizeDialog::onProgress);
    connect(m_handle, &JobHandle::finished, this, &QuantizeDialog::onFinished);
    setRunning(true);
    return true;
}

void QuantizeDialog::cancelRun()
{
    if (m_handle)
        m_handle->cancel();
}

void QuantizeDialog::setRunning(bool running)
{
    m_progress->setVisible(running);
    m_progress->setValue(0);
    m_stopButton->setEnabled(running);
    m_runButton->setEnabled(!running);
    for (size_t i = 0; i < m_targetButtons.size(); ++i)
        m_targetButtons[i]->setEnabled(!running && m_reasons[i].isEmpty());
    m_output->setEnabled(!running);
}

void QuantizeDialog::onProgress()
{
    if (!m_handle)
        return;
    const JobProgress& p = m_handle->progress();
    m_progress->setValue(int(p.fraction * 1000));
    m_progress->setFormat(QStringLiteral("%p% · ") + QString::fromStdString(p.stage));
}

void QuantizeDialog::onFinished(JobStatus status, const QString& error)
{
    m_handle = nullptr;
    setRunning(false);
    refresh();
    if (status == JobStatus::Cancelled) {
        showError(tr("Cancelled. Nothing was written, and an existing file of the same name is unchanged."));
    } else if (status == JobStatus::Failed) {
        showError(tr("Quantization failed; nothing was written.\n%1").arg(error));
    } else {
        const QuantizeResult& r = m_job->result();
        m_hasResult = true;
        const bool checkpoint = isCheckpoint(m_job->params().target);
        m_resultPath = QString::fromStdString(
            checkpoint || r.files.empty() ? m_job->params().output.string() : r.files.front().string());
        const double mbPerSecond = r.seconds > 0 ? double(r.bytesWritten) / r.seconds / 1e6 : 0.0;
        QString text =
            tr("<b>Done.</b> Wrote %1 in %2: %3.<br>Tensor data: %4, predicted %5 — %6.<br>Time: %7 s, "
               "%8 MB/s.")
                .arg(QDir::toNativeSeparators(m_resultPath).toHtmlEscaped(),
                     countNoun(r.files.size(), "file", "files"), exactBytes(r.bytesWritten),
                     exactBytes(r.weightBytesWritten), formatExact(r.predictedWeightBytes),
                     r.weightBytesWritten == r.predictedWeightBytes
                         ? tr("exactly as predicted")
                         : tr("<b>differs by %1 bytes</b>")
                               .arg(qint64(r.weightBytesWritten) - qint64(r.predictedWeightBytes)))
                .arg(r.seconds, 0, 'f', 2)
                .arg(mbPerSecond, 0, 'f', 1);
        // The first warnings here, all of them in the tooltip (re-quantizing warns once per tensor).
        QStringList warnings;
        for (const auto& w : r.warnings)
            warnings << QString::fromStdString(w);
        for (qsizetype i = 0; i < warnings.size() && i < 3; ++i)
            text += QStringLiteral("<br>") + tr("Warning: %1").arg(warnings[i].toHtmlEscaped());
        if (warnings.size() > 3)
            text += QStringLiteral("<br>") + tr("… and %1 more warnings (hover to see all)").arg(warnings.size() - 3);
        m_message->setStyleSheet(QString());
        m_message->setTextFormat(Qt::RichText);
        m_message->setToolTip(warnings.join(QLatin1Char('\n')));
        m_message->setText(text);
        m_resultModel->setTensors(r.tensors);
        m_table->resizeColumnsToContents();
        m_table->horizontalHeader()->setSectionResizeMode(QuantizeResultModel::NameColumn, QHeaderView::Stretch);
        m_summary->show();
    }
    emit runFinished(status, error);
}

} // namespace qs
