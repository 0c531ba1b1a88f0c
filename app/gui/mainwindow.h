#pragma once
// The workbench window: a tensor tree in the centre, the model summary docked beside it, loading in the
// background with progress and cancel in the status bar. Every way of opening a model (dialog, drop,
// command line, recent files) goes through openPath(), so tests exercise the same path users do.

#include "core/model/model.h"
#include "core/plan/budget.h"

#include <QMainWindow>

#include <functional>
#include <memory>

class QLabel;
class QLineEdit;
class QMenu;
class QProgressBar;
class QTabWidget;
class QToolButton;
class QTimer;
class QTreeView;

namespace qs {

class ChannelView;
class FootprintPanel;
class PlanDocument;
class TierBoardView;
class DepthView;
class HistogramView;
class ModelLoader;
class ModelSummaryWidget;
class SensitivityStore;
class SensitivityView;
class StatsStore;
class StatsTableView;
class TensorFilterProxy;
class TensorTreeModel;

class MainWindow final : public QMainWindow {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MainWindow)

public:
    // Shows a load error; the default opens a window-modal QMessageBox without blocking (open()).
    using ErrorPresenter = std::function<void(const QString& title, const QString& text, const QString& detail)>;

    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Starts loading a file or folder in the background; the current model stays until it succeeds.
    void openPath(const QString& path);
    void setErrorPresenter(ErrorPresenter presenter) { m_errorPresenter = std::move(presenter); }
    // Asks whether to restore an autosaved plan found at load (newer than the saved one); calls
    // answer(true) to restore. The default is a non-blocking question box.
    using RestorePrompt = std::function<void(const QString& autosavePath, std::function<void(bool)> answer)>;
    void setRestorePrompt(RestorePrompt prompt) { m_restorePrompt = std::move(prompt); }
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
    QTreeView* tensorView() const { return m_tensorView; }
    TensorTreeModel* tensorModel() const { return m_treeModel; }
    QLineEdit* filterEdit() const { return m_filterEdit; }
    ModelSummaryWidget* summaryWidget() const { return m_summary; }
    ModelLoader* loader() const { return m_loader; }
    QMenu* recentMenu() const { return m_recentMenu; }
    StatsStore* statsStore() const { return m_stats; }
    HistogramView* histogramView() const { return m_histogram; }
    ChannelView* channelView() const { return m_channels; }
    DepthView* depthView() const { return m_depth; }
    StatsTableView* statsView() const { return m_statsView; }
    PlanDocument* planDocument() const { return m_plan; }
    TierBoardView* tierBoard() const { return m_tierBoard; }
    FootprintPanel* footprintPanel() const { return m_footprint; }
    SensitivityStore* sensitivityStore() const { return m_sensitivity; }
    SensitivityView* sensitivityView() const { return m_sensitivityView; }

    // Starts the sensitivity matrix (every weight matrix x the default formats) in the background; cells
    // stream into the Sensitivity tab.
    void computeSensitivity();
    void cancelSensitivity();
    bool isComputingSensitivity() const;

    // Starts the whole-model analysis (cached results come back at once). Also started after every load
    // unless the "analysis/automatic" setting is false.
    void analyzeModel();
    // Opens the (non-blocking) fit-to-budget dialog with the size / error trade-off curve.
    void fitPlanToBudget();
    void cancelAnalysis();
    bool isAnalyzing() const;
    // Selects tensors in every view (tree, table) and shows them in the histogram and channel views.
    void selectTensors(const QStringList& names);
    // Selects every tensor whose name matches the regular expression; returns how many.
    int selectTensorsMatching(const QString& pattern);
    QStringList selectedTensors() const { return m_selectedNames; }

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
    void createActions();
    void createViews();
    QWidget* createPlanView();
    bool applyBudget(const BudgetProblem& problem, uint64_t budgetBytes);
    void exportPlanTo(int target);
    void openPlanFile();
    void savePlanDialog();
    void autosavePlan();
    QString planKey() const;
    void createStatusBar();
    void readSettings();
    void writeSettings() const;

    void openFileDialog();
    void openFolderDialog();
    void onLoadStarted(const QString& path);
    void onLoadProgress(double fraction, const QString& stage);
    void onLoaded(const QString& path, std::shared_ptr<Model> model);
    void onLoadFailed(const QString& path, const QString& message, const QString& kind);
    void onLoadCancelled(const QString& path);
    void finishLoadingUi();
    void addRecentFile(const QString& path);
    void removeRecentFile(const QString& path);
    void rebuildRecentMenu();
    void applyFilter(const QString& text);
    void updateTitle();
    void showAbout();
    void onTreeSelectionChanged();
    void updateAnalysisViews();
    void onAnalysisProgress(double fraction, const QString& stage);
    void onAnalysisFinished(bool cancelled, const QString& error);
    void createSensitivityView();
    void onSensitivityFinished(bool cancelled, const QString& error);

    ModelLoader* m_loader = nullptr;
    std::shared_ptr<const Model> m_model;
    QString m_modelPath;
    QString m_lastDir;
    QStringList m_recent;
    ErrorPresenter m_errorPresenter;
    RestorePrompt m_restorePrompt;
    QString m_planPath;
    QTimer* m_autosaveTimer = nullptr;

    QTabWidget* m_views = nullptr;
    TensorTreeModel* m_treeModel = nullptr;
    TensorFilterProxy* m_proxy = nullptr;
    QTreeView* m_tensorView = nullptr;
    QLineEdit* m_filterEdit = nullptr;
    ModelSummaryWidget* m_summary = nullptr;
    QMenu* m_recentMenu = nullptr;
    QMenu* m_viewMenu = nullptr;
    QProgressBar* m_progressBar = nullptr;
    QToolButton* m_cancelButton = nullptr;
    QLabel* m_modelLabel = nullptr;

    StatsStore* m_stats = nullptr;
    PlanDocument* m_plan = nullptr;
    TierBoardView* m_tierBoard = nullptr;
    FootprintPanel* m_footprint = nullptr;
    HistogramView* m_histogram = nullptr;
    ChannelView* m_channels = nullptr;
    DepthView* m_depth = nullptr;
    StatsTableView* m_statsView = nullptr;
    QProgressBar* m_analysisBar = nullptr;
    QToolButton* m_analysisCancel = nullptr;
    QAction* m_analyzeAction = nullptr;
    QAction* m_cancelAnalysisAction = nullptr;
    SensitivityStore* m_sensitivity = nullptr;
    SensitivityView* m_sensitivityView = nullptr;
    QProgressBar* m_sensitivityBar = nullptr;
    QToolButton* m_sensitivityCancel = nullptr;
    QAction* m_sensitivityAction = nullptr;
    // The selection shown by the analysis views: tensor names, plus groups (title -> member names).
    QStringList m_selectedNames;
    std::vector<std::pair<QString, QStringList>> m_selectedGroups;
    bool m_syncingSelection = false;
};

} // namespace qs
