#pragma once
// TRANSITIONAL: a progress bar and cancel button in the status bar for the work that does not run through
// the JobRunner yet (model loading, statistics, sensitivity). When ModelLoader, StatsStore and
// SensitivityStore start their jobs through the window's runner, their jobs show in the JobArea and this
// class goes away.

#include <QWidget>

class QProgressBar;
class QStatusBar;
class QToolButton;

namespace qs {

class AnalysisControl;
class ModelLoader;
class SensitivityStore;
class StatsStore;

class StatusProgress final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StatusProgress)

public:
    // FORMAT is the bar's text ("Analysing %p%"); the cancel button is named cancelName (for tests).
    StatusProgress(const QString& format, const QString& cancelName, const QString& cancelTip,
                   QWidget* parent = nullptr);

    // Shows the bar; a busy bar until the first fraction arrives.
    void start(bool busy = false);
    // A non-empty stage replaces the bar's text.
    void setProgress(double fraction, const QString& stage = {});
    void finish();

signals:
    void cancelClicked();

private:
    QProgressBar* m_bar = nullptr;
    QToolButton* m_cancel = nullptr;
    QString m_format;
};

// The three bars (loading, statistics, sensitivity) added to the status bar and wired to their sources.
class TransitionalJobBars final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TransitionalJobBars)

public:
    TransitionalJobBars(ModelLoader* loader, StatsStore* stats, SensitivityStore* sensitivity,
                        AnalysisControl* analysis, QStatusBar* statusBar);

private:
    StatusProgress* m_load = nullptr;
    StatusProgress* m_analysis = nullptr;
    StatusProgress* m_sensitivity = nullptr;
};

} // namespace qs
