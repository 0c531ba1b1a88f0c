#include "app/gui/analysiscontrol.h"

#include "core/plan/budget.h"
#include "core/stats/stats.h"
#include "widgets/footprintpanel.h"
#include "widgets/formatting.h"
#include "widgets/sensitivitystore.h"
#include "widgets/sensitivityview.h"
#include "widgets/statsstore.h"

namespace qs {

AnalysisControl::AnalysisControl(StatsStore* stats, SensitivityStore* sensitivity,
                                 SensitivityView* sensitivityView, FootprintPanel* footprint, QObject* parent)
    : QObject(parent), m_stats(stats), m_sensitivity(sensitivity), m_sensitivityView(sensitivityView),
      m_footprint(footprint)
{
    m_sensitivityView->setFormats(m_sensitivity->formats());
    m_sensitivityView->setMessage(tr("Open a model, then press Compute to measure how each weight matrix "
                                     "survives each format."));
    connect(m_sensitivityView, &SensitivityView::computeRequested, this,
            &AnalysisControl::computeSensitivity);
    connect(m_sensitivityView, &SensitivityView::cancelRequested, this, &AnalysisControl::cancelSensitivity);
    connect(m_sensitivity, &SensitivityStore::resultsReady, m_sensitivityView, &SensitivityView::addResults);
    connect(m_sensitivity, &SensitivityStore::finished, this, &AnalysisControl::onSensitivityFinished);
    connect(m_stats, &StatsStore::finished, this, &AnalysisControl::onAnalysisFinished);
}

void AnalysisControl::setModel(std::shared_ptr<const Model> model)
{
    m_model = std::move(model);
    m_stats->setModel(m_model);
    m_sensitivity->setModel(m_model);
    m_footprint->setErrorTable({}); // measurements belong to the previous model
    m_sensitivityView->setTensors(m_sensitivity->tensors());
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
    m_stats->analyze();
    if (!m_stats->isRunning()) // nothing left to analyse
        onAnalysisFinished(false, {});
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
    m_sensitivityView->setTensors(m_sensitivity->tensors());
    m_sensitivityView->setMessage(tr("Computing… cells appear as each tensor is done."));
    m_sensitivity->setModel(m_model); // recomputes from scratch (cached cells come back at once)
    m_sensitivityView->setRunning(true);
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
