// The GraphQL documents the pages send. Every count, sum, rate and percentile is the API's; the
// pages only lay them out. A test validates each document here against schema.graphql.

const TOTALS = `
  invocations completed failed running successRate totalCostUsd unpricedInvocations avgCostUsd
  avgDurationSeconds inputTokens outputTokens cacheCreationTokens cacheReadTokens totalTokens`;

const ERRORS = "topErrors { kind name errorMessage count }";

export const OVERVIEW = `
query DashboardOverview($filter: UsageFilterInput!, $previous: UsageFilterInput!, $period: Period!) {
  current: usage(filter: $filter) { ${TOTALS} p95DurationSeconds ${ERRORS} }
  previous: usage(filter: $previous) { ${TOTALS} p95DurationSeconds }
  total: history(period: $period, filter: $filter) { series { startAt invocations totalCostUsd } }
  topAgents: leaderboard(kind: AGENT, by: USAGE, limit: 5, filter: $filter) { name }
  agents(filter: $filter, first: 1000) {
    items { kind name ${TOTALS} p95DurationSeconds }
    hasNext
  }
  skills(filter: $filter, first: 1000) {
    items { kind name ${TOTALS} p95DurationSeconds }
    hasNext
  }
}`;

export const TREND_FIELDS =
  "series { startAt invocations completed failed running successRate totalCostUsd }";

// What trend lines and the stacked charts draw of each name: its buckets are the total's. Histories
// are asked as series (a list per field): hundreds of points would cost the server an object each.
const LINE_FIELDS = "series { invocations totalCostUsd }";

/** The histories of up to 100 agents and 100 skills in one request, by name. */
export const TRENDS = `
query DashboardTrends(
  $filter: UsageFilterInput!, $period: Period!, $agents: [String!]!, $skills: [String!]!,
  $withAgents: Boolean!, $withSkills: Boolean!
) {
  agents: histories(kind: AGENT, names: $agents, period: $period, filter: $filter)
    @include(if: $withAgents) { name ${LINE_FIELDS} }
  skills: histories(kind: SKILL, names: $skills, period: $period, filter: $filter)
    @include(if: $withSkills) { name ${LINE_FIELDS} }
}`;

const STATS = `${TOTALS} p50DurationSeconds p95DurationSeconds p99DurationSeconds firstSeenAt lastSeenAt ${ERRORS}`;

const TASK_SUMMARY = `
      taskId status durationSeconds invocations completed failed running totalCostUsd
      unpricedInvocations totalTokens firstSeenAt lastSeenAt agents skills`;

/**
 * Budgets in their current period and the open alerts: those covering the project, the agent or
 * skill when given (null: every one).
 */
export const GUARDRAILS = `
query DashboardGuardrails($projectId: String, $kind: Kind, $name: String) {
  budgetStatus(kind: $kind, name: $name, projectId: $projectId) {
    budget { id kind name projectId period unit limitUsd limitTokens action tz label }
    startAt endAt invocations unpricedInvocations spent remaining forecast exhausted message
  }
  alertRules(state: FIRING, kind: $kind, name: $name, projectId: $projectId) {
    id metric kind name projectId threshold windowSeconds minSample value changedAt label
  }
}`;

export const USAGE = `
query DashboardUsage(
  $kind: Kind!, $name: String!, $isAgent: Boolean!, $filter: UsageFilterInput!,
  $previous: UsageFilterInput!, $period: Period!
) {
  agent(name: $name, filter: $filter) @include(if: $isAgent) { ${STATS} }
  skill(name: $name, filter: $filter) @skip(if: $isAgent) { ${STATS} }
  previousAgent: agent(name: $name, filter: $previous) @include(if: $isAgent) { ${TOTALS} p95DurationSeconds }
  previousSkill: skill(name: $name, filter: $previous) @skip(if: $isAgent) { ${TOTALS} p95DurationSeconds }
  history(kind: $kind, name: $name, period: $period, filter: $filter) { ${TREND_FIELDS} }
  durationHistogram(kind: $kind, name: $name, filter: $filter) {
    buckets { minSeconds maxSeconds count }
    measured exact
  }
  models(kind: $kind, name: $name, filter: $filter) {
    models { model ${TOTALS} }
  }
  tasks(kind: $kind, name: $name, filter: $filter, first: 15) {
    items { ${TASK_SUMMARY} }
    hasNext
  }
}`;

export const TASKS = `
query DashboardTasks($kind: Kind, $name: String, $filter: UsageFilterInput!, $after: String) {
  tasks(kind: $kind, name: $name, filter: $filter, first: 50, after: $after) {
    items { ${TASK_SUMMARY} }
    hasNext
    nextCursor
  }
  names
}`;

export const TASK = `
query DashboardTask($id: String!) {
  task(id: $id) {
    id
    summary { totalCostUsd unpricedInvocations }
    invocations {
      kind name eventId parentId projectId status timestamp finishedAt durationSeconds costUsd
      costSource inputTokens outputTokens cacheCreationTokens cacheReadTokens model errorMessage
      totalCostUsd unpricedInvocations
    }
  }
}`;
