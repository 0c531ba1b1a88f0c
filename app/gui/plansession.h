#pragma once
// The precision plan of the open model as a document with a file: starts a fresh plan for each model,
// opens, saves and exports plan files, autosaves unsaved edits shortly after they happen and offers an
// autosave left by a crash when the model is opened again. Autosaves are keyed by the plan file once it
// has one, else by the model path (planKey()).

#include "app/gui/errorpresenter.h"
#include "core/plan/export.h"
#include "core/plan/modellayout.h"

#include <QObject>
#include <QString>
#include <functional>

class QTimer;
class QWidget;

namespace qs {

class PlanDocument;

class PlanSession final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(PlanSession)

public:
    // Asks whether to restore an autosave; calls answer(true) to restore. The default is a non-blocking
    // question box on the dialog parent.
    using RestorePrompt = std::function<void(const QString& autosavePath, std::function<void(bool)> answer)>;

    // An export refusal: the summary, every problem, and the one-click fixes; calls choose(i) to apply fix i
    // (one undo step), or never. The default is a non-blocking warning box with a button per fix.
    using FixPrompt = std::function<void(const QString& text, const QString& details, const QStringList& fixes,
                                         std::function<void(int)> choose)>;

    // Dialogs open on dialogParent, which also owns the session.
    PlanSession(ErrorPresenter errors, QWidget* dialogParent);

    PlanDocument* document() const { return m_plan; }
    void setRestorePrompt(RestorePrompt prompt) { m_restorePrompt = std::move(prompt); }
    void setFixPrompt(FixPrompt prompt) { m_fixPrompt = std::move(prompt); }

    // A new model: a plan from the default preset; an autosave newer than the saved plan is offered.
    void startModel(ModelLayout layout, const QString& modelPath);
    // Saves as JSON; the autosave is then discarded.
    bool saveTo(const QString& path);
    // Where the open / save dialogs start (the window's last directory).
    void setStartDirectory(const QString& dir) { m_startDir = dir; }
    void saveDialog();
    void openDialog();
    void exportDialog(int exportTarget);
    QString planKey() const { return m_planPath.isEmpty() ? m_modelPath : m_planPath; }

signals:
    void message(const QString& text, int timeoutMs);
    // The autosave was written (atomically) to `path`.
    void autosaved(const QString& path);

private:
    // Writes the autosave of unsaved edits; on failure says so in the status bar (the previous autosave is
    // left as it was) and returns false with the reason in *why.
    bool autosave(QString* why = nullptr);
    void refusal(ExportTarget target, const std::vector<ExportProblem>& problems);

    PlanDocument* m_plan = nullptr;
    QWidget* m_dialogParent = nullptr;
    ErrorPresenter m_errors;
    RestorePrompt m_restorePrompt;
    FixPrompt m_fixPrompt;
    QTimer* m_autosaveTimer = nullptr;
    QString m_modelPath;
    QString m_planPath;
    QString m_startDir;
};

} // namespace qs
