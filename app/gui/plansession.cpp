#include "app/gui/plansession.h"

#include "core/plan/export.h"
#include "core/plan/exportfix.h"
#include "core/plan/planio.h"
#include "widgets/plandocument.h"

#include <QAbstractButton>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QTimer>
#include <QUndoStack>
#include <QWidget>

namespace qs {

PlanSession::PlanSession(ErrorPresenter errors, QWidget* dialogParent)
    : QObject(dialogParent), m_plan(new PlanDocument(this)), m_dialogParent(dialogParent),
      m_errors(std::move(errors))
{
    // Edits are autosaved shortly after they happen, so a crash loses at most a second or two.
    m_autosaveTimer = new QTimer(this);
    m_autosaveTimer->setSingleShot(true);
    m_autosaveTimer->setInterval(1500);
    connect(m_autosaveTimer, &QTimer::timeout, this, [this] { autosave(); });
    // (The undo stack's index moves after the command ran, so this, not planChanged, knows "clean".)
    connect(m_plan->undoStack(), &QUndoStack::indexChanged, this, [this] {
        if (m_plan->undoStack()->isClean())
            m_autosaveTimer->stop();
        else
            m_autosaveTimer->start();
    });
    m_restorePrompt = [this](const QString& autosave, std::function<void(bool)> answer) {
        auto* box = new QMessageBox(QMessageBox::Question, tr("Restore Plan"),
                                    tr("An unsaved precision plan for this model was found."),
                                    QMessageBox::Yes | QMessageBox::No, m_dialogParent);
        box->setInformativeText(tr("Restore it? (%1)").arg(QDir::toNativeSeparators(autosave)));
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->setObjectName(QStringLiteral("restorePlanBox"));
        connect(box, &QMessageBox::finished, this, [box, answer](int) {
            answer(box->standardButton(box->clickedButton()) == QMessageBox::Yes);
        });
        box->open();
    };
}

void PlanSession::startModel(ModelLayout layout, const QString& modelPath)
{
    // Switching models keeps an edited plan: its autosave is written now (not after the usual delay) and is
    // offered when that model is opened again.
    QString kept;
    if (m_plan->hasModel() && !m_plan->undoStack()->isClean()) {
        m_autosaveTimer->stop();
        QString why;
        if (autosave(&why))
            kept = tr("Your unsaved plan for %1 is kept: it is offered again when you reopen that model. ")
                       .arg(QFileInfo(m_modelPath).fileName());
        else // the edits are about to be replaced: a dialog, not a status message that is overwritten below
            m_errors(tr("Autosave Failed"),
                     tr("Your unsaved plan for %1 could not be kept.").arg(QFileInfo(m_modelPath).fileName()), why);
    }
    m_modelPath = modelPath;
    m_planPath.clear();
    m_plan->setLayout(std::move(layout));
    if (!m_plan->plan().preset().empty())
        emit message(kept + tr("New plan from the %1 preset: change it on the Plan tab (Preset, Fit to Budget, or "
                               "drag tensors between tiers).")
                                .arg(QString::fromStdString(m_plan->plan().preset())),
                     12000);
    else if (!kept.isEmpty())
        emit message(kept, 12000);
    const auto autosave = newerAutosave(planKey().toStdString());
    if (!autosave)
        return;
    const QString autosavePath = QString::fromStdString(autosave->string());
    const QString key = planKey();
    m_restorePrompt(autosavePath, [this, autosavePath, key](bool restore) {
        if (key != planKey())
            return; // another model was opened meanwhile
        if (!restore) {
            discardAutosave(key.toStdString());
            return;
        }
        try {
            m_plan->setPlan(loadPlan(autosavePath.toStdString()), tr("Restore autosaved plan"));
        } catch (const std::exception& e) {
            m_errors(tr("Restore Plan"), tr("The autosaved plan could not be read."),
                     QString::fromStdString(e.what()));
        }
    });
}

bool PlanSession::autosave(QString* why)
{
    if (!m_plan->hasModel() || m_plan->undoStack()->isClean())
        return true;
    try {
        const auto path = writeAutosave(m_plan->plan(), planKey().toStdString());
        emit autosaved(QString::fromStdString(path.string()));
        return true;
    } catch (const std::exception& e) {
        // The atomic write left any previous autosave untouched; the next edit tries again.
        const QString reason = QString::fromStdString(e.what());
        if (why)
            *why = reason;
        emit message(tr("Autosave failed: %1 — save the plan (Ctrl+S) to keep your edits.").arg(reason), 30000);
        return false;
    }
}

bool PlanSession::saveTo(const QString& path)
{
    try {
        savePlan(m_plan->plan(), path.toStdString());
    } catch (const std::exception& e) {
        m_errors(tr("Save Plan"), tr("Cannot save %1").arg(path), QString::fromStdString(e.what()));
        return false;
    }
    // Both keys: the model's autosave (before the first save) and the plan file's.
    discardAutosave(planKey().toStdString());
    m_planPath = QFileInfo(path).absoluteFilePath();
    discardAutosave(planKey().toStdString());
    m_autosaveTimer->stop();
    m_plan->undoStack()->setClean();
    emit message(tr("Saved plan %1").arg(QDir::toNativeSeparators(path)), 6000);
    return true;
}

void PlanSession::saveDialog()
{
    if (!m_plan->hasModel())
        return;
    const QString suggestion = m_planPath.isEmpty()
                                   ? QFileInfo(m_modelPath).completeBaseName() + QStringLiteral(".plan.json")
                                   : m_planPath;
    QString path = QFileDialog::getSaveFileName(m_dialogParent, tr("Save Plan"),
                                                QDir(m_startDir).filePath(suggestion), tr("Plans (*.json)"));
    if (path.isEmpty())
        return;
    if (QFileInfo(path).suffix().isEmpty())
        path += QStringLiteral(".json");
    saveTo(path);
}

void PlanSession::openDialog()
{
    if (!m_plan->hasModel())
        return;
    const QString path =
        QFileDialog::getOpenFileName(m_dialogParent, tr("Open Plan"), m_startDir, tr("Plans (*.json)"));
    if (path.isEmpty())
        return;
    try {
        Plan plan = loadPlan(path.toStdString());
        std::string why;
        if (!planMatchesModel(plan, m_plan->layout(), &why))
            emit message(tr("Note: %1").arg(QString::fromStdString(why)), 10000);
        m_plan->setPlan(plan, tr("Open plan %1").arg(QFileInfo(path).fileName()));
    } catch (const std::exception& e) {
        m_errors(tr("Open Plan"), tr("Cannot open %1").arg(path), QString::fromStdString(e.what()));
    }
}

void PlanSession::exportDialog(int targetId)
{
    if (!m_plan->hasModel())
        return;
    const auto target = ExportTarget(targetId);
    try {
        const ExportResult result = exportPlan(m_plan->plan(), target);
        QSettings settings;
        const QString dir = settings.value(QStringLiteral("exportDirectory")).toString();
        const QString path = QFileDialog::getSaveFileName(
            m_dialogParent, tr("Export Plan"),
            QDir(dir).filePath(QString::fromLatin1(exportDefaultFileName(target))));
        if (path.isEmpty())
            return;
        settings.setValue(QStringLiteral("exportDirectory"), QFileInfo(path).absolutePath());
        writeExport(result, path.toStdString());
        emit message(tr("Exported %1").arg(QDir::toNativeSeparators(path)), 8000);
        if (!result.commands.empty() || !result.notes.empty())
            QMessageBox::information(m_dialogParent, tr("Plan Exported"), tr("Wrote %1").arg(path),
                                     QMessageBox::Ok);
    } catch (const ExportError& e) {
        refusal(target, e.problems());
    } catch (const std::exception& e) {
        m_errors(tr("Export Plan"), tr("The plan could not be exported."), QString::fromStdString(e.what()));
    }
}

void PlanSession::refusal(ExportTarget target, const std::vector<ExportProblem>& problems)
{
    // Every problem in the details (the box scrolls), and the fixes as buttons.
    QStringList lines;
    for (const auto& p : problems)
        lines << QStringLiteral("%1 (%2): %3")
                     .arg(QString::fromStdString(p.tensor), QString::fromStdString(p.format),
                          QString::fromStdString(p.reason));
    const std::vector<PlanFix> fixes = exportFixes(m_plan->plan(), m_plan->layout(), problems);
    QStringList labels;
    for (const auto& f : fixes)
        labels << QString::fromStdString(f.label);
    const QString text = tr("This plan cannot be expressed for %1: %2.")
                             .arg(QString::fromLatin1(exportTargetName(target)),
                                  QString::fromStdString(describeProblemCount(problems))) +
                         (fixes.empty() ? QString() : tr(" Apply a fix, then export again."));
    auto apply = [this, fixes](int i) {
        if (i < 0 || size_t(i) >= fixes.size())
            return;
        m_plan->setPlan(applyFix(m_plan->plan(), fixes[size_t(i)]), QString::fromStdString(fixes[size_t(i)].label));
        emit message(tr("Applied: %1").arg(QString::fromStdString(fixes[size_t(i)].label)), 8000);
    };
    if (m_fixPrompt) {
        m_fixPrompt(text, lines.join(QLatin1Char('\n')), labels, apply);
        return;
    }
    if (fixes.empty()) {
        m_errors(tr("Export Plan"), text, lines.join(QLatin1Char('\n')));
        return;
    }
    auto* box = new QMessageBox(QMessageBox::Warning, tr("Export Plan"), text, QMessageBox::Cancel, m_dialogParent);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setDetailedText(lines.join(QLatin1Char('\n')));
    QList<QAbstractButton*> buttons;
    for (const QString& label : labels)
        buttons << box->addButton(label, QMessageBox::AcceptRole);
    connect(box, &QMessageBox::buttonClicked, this, [buttons, apply](QAbstractButton* b) { apply(int(buttons.indexOf(b))); });
    box->open();
}

} // namespace qs
