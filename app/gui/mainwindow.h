#pragma once
// The workbench window: a tensor tree in the centre, the model summary docked beside it, loading in the
// background. Every way of opening a model (dialog, drop, command line, recent files) goes through
// openPath(), so tests exercise the same path users do. The window lays out the views and the menus; the
// work is done by focused parts: PlanSession (the plan document and its files), SelectionHub (one
// selection across the views), AnalysisPresenter (the plots), BudgetDialog, and one JobRunner whose jobs
// show in the JobArea of the status bar.

#include "app/gui/errorpresenter.h"
#include "app/gui/openactions.h"
#include "app/gui/planpage.h"
#include "app/gui/plansession.h"
#include "core/model/model.h"
#include "widgets/tensorbrowser.h"

#include <QMainWindow>
#include <functional>
#include <memory>

class QAction;
class QLabel;
class QLineEdit;
class QMenu;
class QTabWidget;
class QTreeView;

namespace qs {

class AnalysisControl;
class AnalysisPresenter;
class CalibrationControl;
class ChannelView;
class DepthView;
class FootprintPanel;
class HistogramView;
class JobArea;
class JobRunner;
class ModelLoader;
class ModelSummaryWidget;
class PlanDocument;
class QuantizeDialog;
class SelectionHub;
class SensitivityStore;
class SensitivityView;
class StatsStore;
class StatsTableView;
class TensorTreeModel;
class TierBoardView;

class MainWindow final : public QMainWindow {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MainWindow)

public:
    // Shows a load error; the default opens a window-modal QMessageBox without blocking (open()).
    using ErrorPresenter = qs::ErrorPresenter;

    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Starts loading a file or folder in the background; the current model stays until it succeeds.
    void openPath(const QString& path);
    void setErrorPresenter(ErrorPresenter presenter) { m_errorPresenter = std::move(presenter); }
    // Asks whether to restore an autosaved plan found at load (newer than the saved one); calls
    // answer(true) to restore. The default is a non-blocking question box.
    using RestorePrompt = std::function<void(const QString& autosavePath, std::function<void(bool)> answer)>;
    void setRestorePrompt(RestorePrompt prompt);
    // Saves the plan as JSON (the plan's autosave is then discarded).
    bool savePlanTo(const QString& path);

    std::shared_ptr<const Model> model() const { return m_model; }
    QString modelPath() const { return m_modelPath; }
    bool isLoading() const;
    QStringList recentFiles() const;
    // Makes a named view current ("tensors", ...); false when unknown.
    bool showView(const QString& name);
    QStringList viewNames() const;

    // For tests and screenshots.
    QTreeView* tensorView() const { return m_browser->view(); }
    TensorTreeModel* tensorModel() const { return m_browser->treeModel(); }
    QLineEdit* filterEdit() const { return m_browser->filterEdit(); }
    ModelSummaryWidget* summaryWidget() const { return m_summary; }
    ModelLoader* loader() const { return m_loader; }
    QMenu* recentMenu() const { return m_open->recentMenu(); }
    StatsStore* statsStore() const { return m_stats; }
    HistogramView* histogramView() const { return m_histogram; }
    ChannelView* channelView() const { return m_channels; }
    DepthView* depthView() const { return m_depth; }
    StatsTableView* statsView() const { return m_statsView; }
    PlanDocument* planDocument() const { return m_session->document(); }
    CalibrationControl* calibration() const { return m_calibration; }
    PlanSession* planSession() const { return m_session; }
    TierBoardView* tierBoard() const { return m_planPage->tierBoard(); }
    FootprintPanel* footprintPanel() const { return m_planPage->footprint(); }
    SensitivityStore* sensitivityStore() const { return m_sensitivity; }
    SensitivityView* sensitivityView() const { return m_sensitivityView; }
    SelectionHub* selectionHub() const { return m_selection; }
    JobRunner* jobRunner() const { return m_runner; }
    JobArea* jobArea() const { return m_jobArea; }

    // Starts the sensitivity matrix (every weight matrix x the default formats) in the background; cells
    // stream into the Sensitivity tab.
    void computeSensitivity();
    void cancelSensitivity();
    bool isComputingSensitivity() const;

    // Starts the whole-model analysis (cached results come back at once). Also started after every load
    // unless the "analysis/automatic" setting is false.
    void analyzeModel();
    // Opens the (non-blocking) fit-to-budget dialog with the size / error trade-off curve; the solve runs
    // as a job.
    void fitPlanToBudget();
    // Opens (or raises) the non-modal Quantize dialog for the open model and the current plan.
    QuantizeDialog* quantize();
    void cancelAnalysis();
    bool isAnalyzing() const;
    // Selects tensors in every view (tree, table, board) and shows them in the histogram and channel views.
    void selectTensors(const QStringList& names);
    // Selects every tensor whose name matches the regular expression; returns how many.
    int selectTensorsMatching(const QString& pattern);
    QStringList selectedTensors() const;

    // Where the bundled sample model is (source tree or installed), empty when missing.
    static QString samplePath();

signals:
    void modelLoaded(const QString& path);
    void loadFailed(const QString& path, const QString& message);
    void loadCancelled(const QString& path);
    void analysisFinished(bool cancelled);
    void sensitivityFinished(bool cancelled);

protected:
    void closeEvent(QCloseEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void createViews();
    void createDocks();
    void createActions();
    void createStatusBar();
    void readSettings();
    void writeSettings() const;

    void onLoaded(const QString& path, std::shared_ptr<Model> model);
    void onLoadFailed(const QString& path, const QString& message, const QString& kind);
    void updateTitle();
    void showMessage(const QString& text, int timeoutMs);

    ModelLoader* m_loader = nullptr;
    JobRunner* m_runner = nullptr;
    std::shared_ptr<const Model> m_model;
    QString m_modelPath;
    ErrorPresenter m_errorPresenter;
    ErrorPresenter m_presentError; // forwards to m_errorPresenter as it is when called

    PlanSession* m_session = nullptr;
    SelectionHub* m_selection = nullptr;
    StatsStore* m_stats = nullptr;
    AnalysisPresenter* m_presenter = nullptr;
    AnalysisControl* m_analysis = nullptr;
    CalibrationControl* m_calibration = nullptr;
    SensitivityStore* m_sensitivity = nullptr;
    OpenActions* m_open = nullptr;

    QTabWidget* m_views = nullptr;
    TensorBrowser* m_browser = nullptr;
    ModelSummaryWidget* m_summary = nullptr;
    QLabel* m_modelLabel = nullptr;
    PlanPage* m_planPage = nullptr;
    HistogramView* m_histogram = nullptr;
    ChannelView* m_channels = nullptr;
    DepthView* m_depth = nullptr;
    StatsTableView* m_statsView = nullptr;
    SensitivityView* m_sensitivityView = nullptr;

    JobArea* m_jobArea = nullptr;
};

} // namespace qs
