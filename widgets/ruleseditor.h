#pragma once
// The plan's rules, edited in the GUI (issue 13 #1): an ordered list of "role or regex -> format" rules,
// first match wins, with a live preview of what each rule matches on the open model, and Apply as one undo
// step. The same rules the CLI takes (`plan --rules`) and a plan file stores.

#include "core/plan/plan.h"

#include <QAbstractTableModel>
#include <QDialog>

class QComboBox;
class QLabel;
class QStringListModel;
class QTableView;

namespace qs {

class PlanDocument;

class RulesModel final : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column { MatchColumn, PatternColumn, FormatColumn, CountColumn, ColumnCount };

    explicit RulesModel(QObject* parent = nullptr);

    const std::vector<PlanRule>& rules() const { return m_rules; }
    void setRules(std::vector<PlanRule> rules);
    // Per-rule tensor counts from ruleMatches(), shown in the Matches column.
    void setCounts(std::vector<int> counts);

    void addRule(const PlanRule& rule, int row = -1);
    bool moveRule(int row, int delta);

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
    Qt::ItemFlags flags(const QModelIndex& index) const override;
    bool setData(const QModelIndex& index, const QVariant& value, int role = Qt::EditRole) override;
    bool removeRows(int row, int count, const QModelIndex& parent = {}) override;

signals:
    void rulesEdited();

private:
    std::vector<PlanRule> m_rules;
    std::vector<int> m_counts;
};

class RulesDialog final : public QDialog {
    Q_OBJECT
public:
    // Starts from the plan's rules. Non-modal: open with show().
    explicit RulesDialog(PlanDocument* document, QWidget* parent = nullptr);

    RulesModel* model() const { return m_model; }
    // What unmatched plannable tensors get on Apply: "" keeps their current assignment, "stored" returns them
    // to the stored type, else a format name.
    void setUnmatched(const QString& choice);
    // The preview: for each tensor a rule matches, "name -> format"; the status line's text.
    QStringList preview(int rule) const;
    QString status() const;
    // Applies the rules to the plan as one undo step; false (and the status says why) when they are invalid.
    bool apply();

private:
    void refresh();

    PlanDocument* m_document;
    RulesModel* m_model;
    QTableView* m_table = nullptr;
    QComboBox* m_unmatched = nullptr;
    QStringListModel* m_previewModel = nullptr;
    QLabel* m_status = nullptr;
    std::vector<int> m_matches; // ruleMatches() of the current rules, empty when they are invalid
    std::vector<std::string> m_notes; // substitutions of the last Apply
};

} // namespace qs
