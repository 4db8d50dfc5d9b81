import { createRouter, createWebHistory, type RouteRecordRaw } from "vue-router";
import { useAuthStore } from "@/stores/auth";

// Exactly the paths of the dashboard; every one is a deep link the relay answers with index.html.
// Views are lazy-loaded so the first load stays small.
const routes: RouteRecordRaw[] = [
  { path: "/", redirect: "/dashboard" },
  { path: "/login", name: "login", component: () => import("@/views/LoginView.vue"), meta: { public: true } },
  { path: "/dashboard", name: "dashboard", component: () => import("@/views/DashboardView.vue") },
  { path: "/machines", name: "machines", component: () => import("@/views/MachinesView.vue") },
  { path: "/machines/:id", name: "machine", component: () => import("@/views/MachineDetailView.vue"), props: true },
  { path: "/sessions", name: "sessions", component: () => import("@/views/SessionsView.vue") },
  { path: "/sessions/new", name: "session-new", component: () => import("@/views/SessionNewView.vue") },
  {
    path: "/sessions/:id/terminal",
    name: "terminal",
    component: () => import("@/views/TerminalView.vue"),
    props: true,
    meta: { fullBleed: true },
  },
  { path: "/projects", name: "projects", component: () => import("@/views/ProjectsView.vue") },
  { path: "/projects/:id", name: "project", component: () => import("@/views/ProjectView.vue"), props: true },
  { path: "/projects/:id/tasks", name: "project-tasks", component: () => import("@/views/TasksView.vue"), props: true },
  { path: "/projects/:id/locks", name: "project-locks", component: () => import("@/views/LocksView.vue"), props: true },
  {
    path: "/projects/:id/context",
    name: "project-context",
    component: () => import("@/views/ContextView.vue"),
    props: true,
  },
  { path: "/skills", name: "skills", component: () => import("@/views/SkillsView.vue") },
  { path: "/mcp", name: "mcp", component: () => import("@/views/McpView.vue") },
  { path: "/commands", name: "commands", component: () => import("@/views/CommandsView.vue") },
  { path: "/settings", name: "settings", component: () => import("@/views/SettingsView.vue") },
  { path: "/:rest(.*)*", name: "not-found", component: () => import("@/views/NotFoundView.vue"), meta: { public: true } },
];

export const router = createRouter({ history: createWebHistory(), routes });

router.beforeEach(async (to) => {
  if (to.meta.public) return true;
  const auth = useAuthStore();
  if (await auth.ensureSignedIn()) return true;
  return { name: "login", query: { next: to.fullPath } };
});
