#include "app/gui/statusprogress.h"

#include "app/gui/analysiscontrol.h"
#include "app/gui/modelloader.h"
#include "widgets/sensitivitystore.h"
#include "widgets/statsstore.h"

#include <QHBoxLayout>
#include <QProgressBar>
#include <QStatusBar>
#include <QToolButton>

namespace qs {

StatusProgress::StatusProgress(const QString& format, const QString& cancelName, const QString& cancelTip,
                               QWidget* parent)
    : QWidget(parent), m_bar(new QProgressBar(this)), m_cancel(new QToolButton(this)), m_format(format)
{
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_bar->setRange(0, 1000);
    m_bar->setMaximumWidth(220);
    m_bar->setFormat(m_format);
    m_cancel->setObjectName(cancelName);
    m_cancel->setIcon(
        QIcon::fromTheme(QStringLiteral("process-stop"), QIcon(QStringLiteral(":/icons/cancel.svg"))));
    m_cancel->setToolTip(cancelTip);
    m_cancel->setAutoRaise(true);
    layout->addWidget(m_bar);
    layout->addWidget(m_cancel);
    connect(m_cancel, &QToolButton::clicked, this, &StatusProgress::cancelClicked);
    hide();
}

void StatusProgress::start(bool busy)
{
    m_bar->setRange(0, busy ? 0 : 1000);
    m_bar->setValue(0);
    m_bar->setFormat(m_format);
    show();
}

void StatusProgress::setProgress(double fraction, const QString& stage)
{
    if (fraction > 0.0) {
        m_bar->setRange(0, 1000);
        m_bar->setValue(int(fraction * 1000.0));
    }
    if (!stage.isEmpty())
        m_bar->setFormat(stage + QStringLiteral(" %p%"));
}

void StatusProgress::finish()
{
    hide();
}

TransitionalJobBars::TransitionalJobBars(ModelLoader* loader, StatsStore* stats,
                                         SensitivityStore* sensitivity, AnalysisControl* analysis,
                                         QStatusBar* statusBar)
    : QObject(statusBar), m_load(new StatusProgress(QStringLiteral("%p%"), QStringLiteral("cancelLoadButton"),
                                                    tr("Cancel loading"))),
      m_analysis(new StatusProgress(tr("Analysing %p%"), QStringLiteral("cancelAnalysisButton"),
                                    tr("Cancel the analysis"))),
      m_sensitivity(new StatusProgress(tr("Sensitivity %p%"), QStringLiteral("cancelSensitivityButton"),
                                       tr("Cancel the sensitivity matrix")))
{
    for (StatusProgress* bar : {m_load, m_analysis, m_sensitivity})
        statusBar->addPermanentWidget(bar);
    connect(m_load, &StatusProgress::cancelClicked, loader, &ModelLoader::cancel);
    connect(loader, &ModelLoader::started, m_load, [this] { m_load->start(true); }); // busy until a fraction
    connect(loader, &ModelLoader::progress, m_load, &StatusProgress::setProgress);
    connect(loader, &ModelLoader::loaded, m_load, &StatusProgress::finish);
    connect(loader, &ModelLoader::failed, m_load, &StatusProgress::finish);
    connect(loader, &ModelLoader::cancelled, m_load, &StatusProgress::finish);

    connect(m_analysis, &StatusProgress::cancelClicked, analysis, &AnalysisControl::cancelAnalysis);
    connect(analysis, &AnalysisControl::analysisStarted, m_analysis, [this] { m_analysis->start(); });
    connect(stats, &StatsStore::progressChanged, m_analysis,
            [this](double f) { m_analysis->setProgress(f); });
    connect(analysis, &AnalysisControl::analysisFinished, m_analysis, &StatusProgress::finish);

    connect(m_sensitivity, &StatusProgress::cancelClicked, analysis, &AnalysisControl::cancelSensitivity);
    connect(analysis, &AnalysisControl::sensitivityStarted, m_sensitivity,
            [this] { m_sensitivity->start(); });
    connect(sensitivity, &SensitivityStore::progressChanged, m_sensitivity,
            [this](double f) { m_sensitivity->setProgress(f); });
    connect(analysis, &AnalysisControl::sensitivityFinished, m_sensitivity, &StatusProgress::finish);
}

} // namespace qs
