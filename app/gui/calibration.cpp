#include "app/gui/calibration.h"

#include "app/gui/evaluatepanel.h"
#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/util/error.h"
#include "widgets/channelview.h"
#include "widgets/jobrunner.h"
#include "widgets/sensitivitystore.h"

#include <QAction>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

namespace qs {

namespace {

// Whether the forward pass can run the model (calibration needs it); the reason when not.
QString forwardProblem(const Model* model)
{
    if (!model)
        return QObject::tr("no model is open");
    if (model->format() == ModelFormat::ConfigOnly)
        return QObject::tr("a config.json alone has no weights to run");
    try {
        transformerConfig(*model);
    } catch (const std::exception& e) {
        return QString::fromStdString(e.what());
    }
    return {};
}

QWidget* pathRow(QLineEdit* edit, const QString& name, const std::function<void()>& browse)
{
    auto* row = new QWidget;
    auto* layout = new QHBoxLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);
    edit->setObjectName(name);
    layout->addWidget(edit, 1);
    auto* button = new QPushButton(QObject::tr("Browse…"));
    button->setObjectName(name + QStringLiteral("Browse"));
    QObject::connect(button, &QPushButton::clicked, edit, browse);
    layout->addWidget(button);
    return row;
}

} // namespace

CalibrationControl::CalibrationControl(JobRunner* runner, SensitivityStore* sensitivity, ErrorPresenter presentError,
                                       QWidget* window)
    : QObject(window), m_runner(runner), m_sensitivity(sensitivity), m_presentError(std::move(presentError)),
      m_window(window)
{
    setObjectName(QStringLiteral("calibration"));
}

void CalibrationControl::addActions(QMenu* menu)
{
    m_calibrateAction = menu->addAction(tr("&Calibrate…"), this, [this] { calibrate(); });
    m_calibrateAction->setObjectName(QStringLiteral("calibrate"));
    m_calibrateAction->setStatusTip(tr("Run the model on a text and collect llama.cpp's importance matrix"));
    m_loadAction = menu->addAction(tr("&Load Importance File…"), this, &CalibrationControl::browseImportance);
    m_loadAction->setObjectName(QStringLiteral("loadImportance"));
    m_clearAction = menu->addAction(tr("C&lear Importance"), this, &CalibrationControl::clearImportance);
    m_clearAction->setObjectName(QStringLiteral("clearImportance"));
    updateActions();
}

void CalibrationControl::setModel(std::shared_ptr<const Model> model)
{
    m_model = std::move(model);
    // The store drops its importance with the model; forget ours without restarting anything.
    m_importance.reset();
    m_activations.reset();
    m_importanceFile.clear();
    if (m_channels)
        m_channels->setActivations(nullptr, nullptr, {});
    updateActions();
    if (m_dialog)
        m_dialog->refresh();
    emit importanceChanged();
}

void CalibrationControl::updateActions()
{
    const bool weights = m_model && m_model->format() != ModelFormat::ConfigOnly;
    if (m_calibrateAction) {
        const QString why = forwardProblem(m_model.get());
        m_calibrateAction->setEnabled(why.isEmpty());
        m_calibrateAction->setToolTip(why.isEmpty() ? m_calibrateAction->statusTip() : why);
    }
    if (m_loadAction)
        m_loadAction->setEnabled(weights);
    if (m_clearAction) {
        m_clearAction->setEnabled(m_importance != nullptr);
        m_clearAction->setText(m_importance ? tr("C&lear Importance (%1)").arg(QFileInfo(m_importanceFile).fileName())
                                            : tr("C&lear Importance"));
    }
}

void CalibrationControl::browseImportance()
{
    const QString start = m_importanceFile.isEmpty() && m_model
                              ? QFileInfo(QString::fromStdString(m_model->path().string())).absolutePath()
                              : m_importanceFile;
    const QString path = QFileDialog::getOpenFileName(m_window, tr("Importance Matrix"), start,
                                                      tr("Importance matrices and activation statistics (*.gguf "
                                                         "*.dat *.h5);;All files (*)"));
    if (!path.isEmpty())
        loadImportance(path);
}

bool CalibrationControl::loadImportance(const QString& path)
{
    if (m_loading || !m_model)
        return false;
    // Read and matched on a worker: a GGUF imatrix is parsed, an .h5 goes through the HDF5 probe process.
    struct Loaded {
        std::shared_ptr<const ImportanceMatrix> importance;
        std::shared_ptr<const ActivationStats> activations;
        size_t matching = 0;
    };
    auto loaded = std::make_shared<Loaded>();
    const std::shared_ptr<const Model> model = m_model;
    auto job = std::make_shared<FunctionJob>(
        tr("Loading %1").arg(QFileInfo(path).fileName()).toStdString(), [loaded, model, path](JobControl& control) {
            if (path.endsWith(QLatin1String(".h5"), Qt::CaseInsensitive)) {
                auto stats = std::make_shared<ActivationStats>(loadActivationStats(path.toStdString(), false, &control));
                loaded->importance = std::make_shared<const ImportanceMatrix>(
                    stats->importance(QFileInfo(path).fileName().toStdString()));
                loaded->activations = std::move(stats);
            } else {
                loaded->importance =
                    std::make_shared<const ImportanceMatrix>(ImportanceMatrix::load(path.toStdString(), &control));
            }
            // It must belong to this model: at least one of its matrices must fit a tensor.
            for (const TensorInfo& t : model->tensors())
                if (t.shape.size() >= 2 && !loaded->importance->importanceFor(t.name, t.columns()).empty())
                    ++loaded->matching;
            if (loaded->matching == 0)
                throw Error(ErrorCode::BadValue, "none of its " + std::to_string(loaded->importance->entries().size()) +
                                                     " matrices fits a tensor of the open model");
        });
    m_loading = m_runner->start(job);
    connect(m_loading, &JobHandle::finished, this, [this, loaded, model, path](JobStatus status, const QString& error) {
        m_loading = nullptr;
        const bool ok = status == JobStatus::Succeeded && model == m_model;
        if (ok) {
            setImportance(loaded->importance, path, loaded->activations);
            emit message(tr("Importance %1: %2 tensors weighted").arg(QFileInfo(path).fileName()).arg(loaded->matching),
                         8000);
        } else if (status == JobStatus::Failed) {
            m_presentError(tr("Importance File"), tr("Could not use %1.").arg(QDir::toNativeSeparators(path)), error);
        }
        emit importanceLoaded(ok);
    });
    return true;
}

void CalibrationControl::showActivationsIn(ChannelView* view)
{
    m_channels = view;
    if (m_channels)
        m_channels->setActivations(m_activations, m_importance, QFileInfo(m_importanceFile).fileName());
}

void CalibrationControl::setImportance(std::shared_ptr<const ImportanceMatrix> importance, const QString& file,
                                       std::shared_ptr<const ActivationStats> activations)
{
    // Cells already measured were measured without it: measure again when the matrix had any.
    const bool recompute = m_sensitivity->resultCount() > 0 || m_sensitivity->isRunning();
    m_importance = std::move(importance);
    m_activations = m_importance ? std::move(activations) : nullptr;
    m_importanceFile = m_importance ? file : QString();
    showActivationsIn(m_channels);
    m_sensitivity->setImportance(m_importance);
    if (recompute)
        m_sensitivity->compute();
    updateActions();
    emit importanceChanged();
}

void CalibrationControl::clearImportance()
{
    if (m_importance)
        setImportance(nullptr, {});
}

CalibrateDialog* CalibrationControl::calibrate()
{
    if (!m_dialog) {
        m_dialog = new CalibrateDialog(this, m_window);
        m_dialog->setAttribute(Qt::WA_DeleteOnClose, false);
    }
    m_dialog->refresh();
    m_dialog->show();
    m_dialog->raise();
    return m_dialog;
}

CalibrateDialog::CalibrateDialog(CalibrationControl* control, QWidget* parent)
    : QDialog(parent), m_control(control), m_text(new QLineEdit(EvaluatePanel::defaultTextPath())),
      m_output(new QLineEdit), m_stats(new QLineEdit), m_ctx(new QSpinBox), m_chunks(new QSpinBox), m_status(new QLabel),
      m_run(new QPushButton(tr("Calibrate"))), m_stop(new QPushButton(tr("Stop")))
{
    setObjectName(QStringLiteral("calibrateDialog"));
    setWindowTitle(tr("Calibrate"));
    auto* intro = new QLabel(tr("Runs the model on a text and collects, for every linear layer, the mean square of "
                                "each input feature: llama.cpp's importance matrix (what llama-imatrix writes). "
                                "The sensitivity matrix is then weighted by it, and llama-quantize and the "
                                "Quantize dialog accept the file. The per-channel input magnitudes (mean |x|, "
                                "max |x|) join the channel view's Input activations."));
    intro->setWordWrap(true);
    m_ctx->setRange(4, 512);
    m_ctx->setValue(512);
    m_ctx->setToolTip(tr("Tokens per chunk (llama-imatrix's -c)"));
    m_chunks->setRange(0, 100000);
    m_chunks->setSpecialValueText(tr("all"));
    m_chunks->setToolTip(tr("Use at most this many chunks of the text"));
    m_status->setWordWrap(true);
    m_status->setObjectName(QStringLiteral("calibrateStatus"));
    m_stop->setEnabled(false);

    auto* form = new QFormLayout;
    form->addRow(tr("Text:"), pathRow(m_text, QStringLiteral("calibrateText"), [this] {
                     const QString path = QFileDialog::getOpenFileName(
                         this, tr("Calibration Text"), m_text->text(),
                         tr("Text files (*.txt *.raw *.md *.py);;All files (*)"));
                     if (!path.isEmpty())
                         m_text->setText(path);
                 }));
    form->addRow(tr("Context:"), m_ctx);
    form->addRow(tr("Chunks:"), m_chunks);
    form->addRow(tr("Importance file:"), pathRow(m_output, QStringLiteral("calibrateOutput"), [this] {
                     const QString path = QFileDialog::getSaveFileName(
                         this, tr("Save Importance Matrix"), m_output->text(),
                         tr("GGUF importance matrix (*.gguf);;Legacy .dat (*.dat)"));
                     if (!path.isEmpty())
                         m_output->setText(path);
                 }));
    m_stats->setPlaceholderText(tr("none"));
    m_stats->setToolTip(tr("Activation statistics (HDF5: mean square, mean |x|, max |x| per input channel); "
                           "leave empty to keep them in this session only"));
    form->addRow(tr("Activation statistics:"), pathRow(m_stats, QStringLiteral("calibrateStats"), [this] {
                     const QString path = QFileDialog::getSaveFileName(this, tr("Save Activation Statistics"),
                                                                       m_stats->text(), tr("HDF5 (*.h5)"));
                     if (!path.isEmpty())
                         m_stats->setText(path);
                 }));
    auto* buttons = new QDialogButtonBox;
    buttons->addButton(m_run, QDialogButtonBox::AcceptRole);
    buttons->addButton(m_stop, QDialogButtonBox::ActionRole);
    buttons->addButton(QDialogButtonBox::Close);
    connect(m_run, &QPushButton::clicked, this, [this] { run(); });
    connect(m_stop, &QPushButton::clicked, this, [this] {
        if (m_handle)
            m_handle->cancel();
    });
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::hide);

    auto* layout = new QVBoxLayout(this);
    layout->addWidget(intro);
    layout->addLayout(form);
    layout->addWidget(m_status);
    layout->addWidget(buttons);
    resize(620, sizeHint().height());
}

QString CalibrateDialog::defaultOutput(const Model& model)
{
    const QFileInfo path(QString::fromStdString(model.path().string()));
    const QString base = path.isDir() ? path.absoluteFilePath() + QStringLiteral("/model") : path.absoluteFilePath();
    const QFileInfo file(base);
    return file.absolutePath() + QLatin1Char('/') + file.completeBaseName() + QStringLiteral(".imatrix.gguf");
}

void CalibrateDialog::refresh()
{
    if (isRunning())
        return;
    const Model* model = m_control->model().get();
    const QString why = forwardProblem(model);
    m_run->setEnabled(why.isEmpty());
    if (!why.isEmpty()) {
        m_status->setText(tr("Cannot calibrate: %1.").arg(why));
        return;
    }
    const TransformerConfig config = transformerConfig(*model);
    const int maximum = config.contextLength > 0 ? int(std::min<uint64_t>(config.contextLength, 1 << 20)) : 1 << 20;
    m_ctx->setRange(4, maximum);
    m_ctx->setValue(std::min(512, maximum));
    m_output->setText(defaultOutput(*model));
    QString stats = defaultOutput(*model);
    stats.replace(QStringLiteral(".imatrix.gguf"), QStringLiteral(".activations.h5"));
    m_stats->setText(stats);
    m_status->setText(m_control->importanceFile().isEmpty()
                          ? tr("No importance loaded.")
                          : tr("Loaded now: %1.").arg(QDir::toNativeSeparators(m_control->importanceFile())));
}

bool CalibrateDialog::run()
{
    if (isRunning() || !m_control->model())
        return false;
    const QString text = m_text->text().trimmed(), output = m_output->text().trimmed(),
                  stats = m_stats->text().trimmed();
    if (text.isEmpty() || output.isEmpty()) {
        m_status->setText(tr("Choose a text and where to save the importance file."));
        return false;
    }
    CalibrateParams params;
    params.model = m_control->model();
    params.textFile = text.toStdString();
    params.ctx = uint32_t(m_ctx->value());
    params.maxChunks = uint32_t(m_chunks->value());
    params.imatrixOut = output.toStdString();
    params.statsOut = stats.toStdString();
    auto job = std::make_shared<CalibrateJob>(std::move(params));
    m_job = job;
    m_handle = m_control->runner()->start(job);
    m_run->setEnabled(false);
    m_stop->setEnabled(true);
    m_status->setText(tr("Calibrating on %1…").arg(QFileInfo(text).fileName()));
    connect(m_handle, &JobHandle::finished, this,
            [this, output, text, stats](JobStatus status, const QString& error) {
                onFinished(status, error, output, text, stats);
            });
    return true;
}

void CalibrateDialog::onFinished(JobStatus status, const QString& error, const QString& output, const QString& text,
                                 const QString& stats)
{
    auto job = std::static_pointer_cast<CalibrateJob>(m_job);
    m_handle = nullptr;
    m_job.reset();
    m_run->setEnabled(true);
    m_stop->setEnabled(false);
    if (status == JobStatus::Cancelled) {
        m_status->setText(tr("Calibration stopped; no file was written."));
    } else if (status != JobStatus::Succeeded) {
        m_status->setText(tr("Calibration failed: %1").arg(error));
    } else {
        const CalibrateResult& r = job->result();
        m_control->setImportance(std::make_shared<const ImportanceMatrix>(
                                     importanceMatrixOf(r, QFileInfo(text).fileName().toStdString())),
                                 output, std::make_shared<const ActivationStats>(r.activations));
        m_status->setText(tr("Wrote %1: %2 matrices from %3 chunks of %4 tokens. It is the session's importance now.")
                              .arg(QDir::toNativeSeparators(output))
                              .arg(r.entries.size())
                              .arg(r.chunks)
                              .arg(r.ctx) +
                          (stats.isEmpty() ? QString()
                                           : tr(" Activation statistics: %1.").arg(QDir::toNativeSeparators(stats))));
    }
    emit finished(status, error);
}

} // namespace qs
