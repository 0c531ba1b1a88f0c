#include "app/gui/analysiscontrol.h"

#include "app/gui/evaluatepanel.h"

#include "core/plan/budget.h"
#include "core/stats/stats.h"
#include "widgets/footprintpanel.h"
#include "widgets/formatchooser.h"
#include "widgets/formatting.h"
#include "widgets/sensitivitystore.h"
#include "widgets/sensitivityview.h"
#include "widgets/statsstore.h"

#include <QAction>
#include <QMenu>
#include <QFileDialog>
#include <QFileInfo>
#include <QSettings>

namespace qs {

AnalysisControl::AnalysisControl(StatsStore* stats, SensitivityStore* sensitivity,
                                 SensitivityView* sensitivityView, FootprintPanel* footprint, QObject* parent)
    : QObject(parent), m_stats(stats), m_sensitivity(sensitivity), m_sensitivityView(sensitivityView),
      m_footprint(footprint)
{
    m_sensitivityView->setStore(m_sensitivity); // the view's model reads the store's one copy
    m_sensitivityView->setMessage(tr("Open a model, then press Compute to measure how each weight matrix "
                                     "survives each format."));
    connect(m_sensitivityView, &SensitivityView::computeRequested, this,
            &AnalysisControl::computeSensitivity);
    connect(m_sensitivityView, &SensitivityView::cancelRequested, this, &AnalysisControl::cancelSensitivity);
    connect(m_sensitivity, &SensitivityStore::resultsReady, m_sensitivityView, &SensitivityView::addResults);
    connect(m_sensitivity, &SensitivityStore::finished, this, &AnalysisControl::onSensitivityFinished);
    connect(m_stats, &StatsStore::finished, this, &AnalysisControl::onAnalysisFinished);
    // The formats Compute measures: chosen beside the button, remembered across sessions.
    FormatChooser* chooser = m_sensitivityView->formatChooser();
    const QVariant saved = QSettings().value(QStringLiteral("sensitivity/formats"));
    if (saved.isValid())
        chooser->setChosenFormats(saved.toStringList());
    m_sensitivity->setFormats(chooser->chosenFormats());
    connect(chooser, &FormatChooser::formatsChanged, this, [this](const QStringList& formats) {
        QSettings().setValue(QStringLiteral("sensitivity/formats"), formats);
        if (m_sensitivity->isRunning())
            return; // takes effect at the next Compute; the running job keeps its columns
        m_sensitivity->setFormats(formats);
        m_sensitivityView->setFormats(formats); // cells measured before stay, new columns wait for Compute
    });
}

void AnalysisControl::addActions(QMenu* menu)
{
    m_analyzeAction = menu->addAction(QIcon(QStringLiteral(":/icons/analyze.svg")), tr("&Analyse Model"),
                                      this, &AnalysisControl::analyze);
    m_analyzeAction->setShortcut(QKeySequence(tr("Ctrl+R")));
    m_analyzeAction->setToolTip(tr("Compute the statistics of every tensor (in the background, cached)"));
    m_analyzeAction->setEnabled(false);
    m_cancelAnalysisAction = menu->addAction(
        QIcon::fromTheme(QStringLiteral("process-stop"), QIcon(QStringLiteral(":/icons/cancel.svg"))),
        tr("&Cancel Analysis"), this, &AnalysisControl::cancelAnalysis);
    m_cancelAnalysisAction->setEnabled(false);
    connect(this, &AnalysisControl::analysisStarted, this, [this] {
        m_cancelAnalysisAction->setEnabled(true);
        m_analyzeAction->setEnabled(false);
    });
    connect(this, &AnalysisControl::analysisFinished, this, [this] {
        m_cancelAnalysisAction->setEnabled(false);
        m_analyzeAction->setEnabled(m_model != nullptr);
    });
    menu->addAction(tr("Compute &Sensitivity Matrix"), this,
                    [this] {
                        emit sensitivityViewRequested();
                        computeSensitivity();
                    })
        ->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));
    QAction* kl = menu->addAction(tr("Measure ΔKL Sensitivity…"), this, [this] {
        const QString text = QFileDialog::getOpenFileName(
            m_sensitivityView, tr("Calibration Text for ΔKL"), EvaluatePanel::defaultTextPath(),
            tr("Text files (*.txt *.raw *.md *.py);;All files (*)"));
        if (!text.isEmpty())
            measureKl(text);
    });
    kl->setObjectName(QStringLiteral("measureKl"));
    kl->setStatusTip(tr("Run the model on a text with each tensor alone quantized: the increase of the output's "
                        "KL divergence per tensor and format, what Fit to Budget then minimises"));
    menu->addAction(tr("Cancel Sensitivity Matrix"), this, &AnalysisControl::cancelSensitivity);
}

void AnalysisControl::measureKl(const QString& textFile)
{
    if (!canAnalyze() || m_sensitivity->isRunning())
        return;
    m_sensitivity->setFormats(m_sensitivityView->formatChooser()->chosenFormats());
    m_sensitivityView->setTensors(m_sensitivity->tensors());
    m_sensitivityView->setMessage(tr("Measuring ΔKL on %1… each cell is the output's KL divergence increase when "
                                     "that tensor alone is quantized, shown as −10·log10(ΔKL) dB (higher is "
                                     "better)").arg(QFileInfo(textFile).fileName()));
    m_sensitivityView->setRunning(true);
    m_sensitivityView->setMetricName(tr("KL score"));
    emit sensitivityStarted();
    m_sensitivity->computeKl(textFile);
}

void AnalysisControl::setModel(std::shared_ptr<const Model> model)
{
    m_model = std::move(model);
    m_stats->setModel(m_model);
    m_sensitivity->setModel(m_model);
    m_sensitivityView->setMetricName(tr("SQNR"));
    m_footprint->setErrorTable({}); // measurements belong to the previous model
    if (m_analyzeAction)
        m_analyzeAction->setEnabled(canAnalyze());
    m_sensitivityView->setTensors(m_sensitivity->tensors());
    m_sensitivityView->setSkipped(canAnalyze() ? m_sensitivity->skipped() : QStringList());
    m_sensitivityView->setMessage(
        canAnalyze()
            ? tr("Press Compute to quantize every weight matrix to each format and measure the error.")
            : tr("Opened from config.json alone: there are no weights to measure."));
}

bool AnalysisControl::canAnalyze() const
{
    return m_model && m_model->format() != ModelFormat::ConfigOnly;
}

void AnalysisControl::analyze()
{
    if (!canAnalyze() || m_stats->isRunning())
        return;
    emit analysisStarted();
    m_stats->analyze(); // with nothing left to analyse, finished() comes at once
}

void AnalysisControl::cancelAnalysis()
{
    m_stats->cancel();
}

bool AnalysisControl::isAnalyzing() const
{
    return m_stats->isRunning();
}

void AnalysisControl::onAnalysisFinished(bool cancelled, const QString& error)
{
    size_t failed = 0;
    if (m_model)
        for (size_t i = 0; i < m_model->tensors().size(); ++i)
            if (const TensorStats* s = m_stats->stats(i); s && !s->error.empty())
                ++failed;
    const QString done = countNoun(m_stats->doneCount(), "tensor", "tensors");
    if (!error.isEmpty())
        emit message(tr("Analysis failed: %1").arg(error), 10000);
    else if (cancelled)
        emit message(tr("Analysis cancelled after %1").arg(done), 8000);
    else if (failed)
        emit message(tr("Analysis done: %1 could not be decoded").arg(countNoun(failed, "tensor", "tensors")),
                     8000);
    else
        emit message(tr("Analysis done: %1").arg(done), 8000);
    emit analysisFinished(cancelled);
}

void AnalysisControl::computeSensitivity()
{
    if (!canAnalyze() || m_sensitivity->isRunning())
        return;
    m_sensitivity->setFormats(m_sensitivityView->formatChooser()->chosenFormats());
    m_sensitivityView->setTensors(m_sensitivity->tensors());
    m_sensitivityView->setMessage(tr("Computing… cells appear as each tensor is done, smallest tensors first."));
    m_sensitivity->setModel(m_model); // recomputes from scratch (cached cells come back at once)
    m_sensitivityView->setRunning(true);
    m_sensitivityView->setMetricName(tr("SQNR"));
    emit sensitivityStarted();
    m_sensitivity->compute();
}

void AnalysisControl::cancelSensitivity()
{
    m_sensitivity->cancel();
}

bool AnalysisControl::isComputingSensitivity() const
{
    return m_sensitivity->isRunning();
}

void AnalysisControl::onSensitivityFinished(bool cancelled, const QString& error)
{
    m_sensitivityView->setRunning(false);
    if (!error.isEmpty()) {
        m_sensitivityView->setMessage(tr("Sensitivity failed: %1").arg(error));
        emit message(tr("Sensitivity failed: %1").arg(error), 10000);
    } else if (cancelled) {
        m_sensitivityView->setMessage(
            tr("Cancelled. Press Compute to start again (finished tensors are cached)."));
        emit message(tr("Sensitivity matrix cancelled"), 5000);
    } else {
        m_footprint->setErrorTable(errorTableFromSensitivity(m_sensitivity->results()));
        emit message(
            tr("Sensitivity matrix done: %1").arg(countNoun(m_sensitivity->resultCount(), "cell", "cells")),
            5000);
    }
    emit sensitivityFinished(cancelled);
}

} // namespace qs
