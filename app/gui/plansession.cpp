#include "app/gui/plansession.h"

#include "core/plan/export.h"
#include "core/plan/planio.h"
#include "widgets/plandocument.h"

#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMessageBox>
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
    connect(m_autosaveTimer, &QTimer::timeout, this, &PlanSession::autosave);
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
    m_modelPath = modelPath;
    m_planPath.clear();
    m_plan->setLayout(std::move(layout));
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

void PlanSession::autosave()
{
    if (!m_plan->hasModel() || m_plan->undoStack()->isClean())
        return;
    try {
        writeAutosave(m_plan->plan(), planKey().toStdString());
    } catch (const std::exception& e) {
        emit message(tr("Autosave failed: %1").arg(QString::fromStdString(e.what())), 8000);
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
        QStringList lines;
        for (const auto& p : e.problems())
            lines << QStringLiteral("%1 (%2): %3")
                         .arg(QString::fromStdString(p.tensor), QString::fromStdString(p.format),
                              QString::fromStdString(p.reason));
        m_errors(
            tr("Export Plan"),
            tr("This plan cannot be expressed for %1.").arg(QString::fromLatin1(exportTargetName(target))),
            lines.mid(0, 20).join(QLatin1Char('\n')));
    } catch (const std::exception& e) {
        m_errors(tr("Export Plan"), tr("The plan could not be exported."), QString::fromStdString(e.what()));
    }
}

} // namespace qs
