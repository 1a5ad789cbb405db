/**
 * The device's NimBLE host task, shared by all links of one device. NimBLE processes every received
 * ACL packet in the host task, one after the other (ble_hs_hci_evt.c:1198-1274
 * ble_hs_hci_evt_acl_process -> the channel's rx callback), and an ATT access callback runs inside that
 * task (ble_att_svr.c:460, 586). So while a callback has not returned (the seed erases flash and, on
 * DONE, restarts inside it), nothing else is processed for any connection of the device; what arrives
 * meanwhile waits. Notifications are not affected: the application sends them from its own task
 * straight to the controller (ble_gattc.c:4411-4474 -> ble_att_cmd.c:58-81).
 * Also here because NimBLE keeps them per host, not per connection: the prepare-write entry pool
 * (ble_att_svr.c:59-64, MYNEWT_VAL(BLE_ATT_SVR_MAX_PREP_ENTRIES), ESP-IDF default 64).
 */
import type { Clock, TimerHandle } from '../../clock';

type Task = { owner: object; run: () => void | Promise<void> };

/** CONFIG_BT_NIMBLE_ATT_MAX_PREP_ENTRIES default (esp-idf components/bt/host/nimble/Kconfig.in). */
export const DEFAULT_PREP_ENTRIES = 64;

export class AttHost {
  private readonly tasks: Task[] = [];
  private running = false;
  /** A task runs synchronously right now (a frame submitted from inside it waits its turn). */
  private inTask = false;
  /** Bumped by reset(): a task's completion from before a reset is ignored. */
  private generation = 0;
  private stalledUntil = 0;
  private stallTimer: TimerHandle | null = null;
  private prepEntriesUsed = 0;

  constructor(
    private readonly clock: Clock,
    readonly prepEntries = DEFAULT_PREP_ENTRIES,
  ) {}

  /** Queues work of a connection; it runs after everything queued before it has finished. */
  submit(owner: object, run: () => void | Promise<void>): void {
    this.tasks.push({ owner, run });
    this.pump();
  }

  /** Received frames of this owner still waiting for the host. */
  queued(owner: object): number {
    let n = 0;
    for (const t of this.tasks) if (t.owner === owner) n++;
    return n;
  }

  /** The connection is gone: its frames not yet processed are dropped (ble_hs_conn_free frees them). */
  forget(owner: object): void {
    for (let i = this.tasks.length - 1; i >= 0; i--) if (this.tasks[i].owner === owner) this.tasks.splice(i, 1);
  }

  /** True while a callback runs or a stall lasts. */
  get busy(): boolean {
    return this.running || this.clock.now() < this.stalledUntil;
  }

  /** The host cannot run for ms of clock time (stalls called back to back add up). */
  stall(ms: number): void {
    if (!(ms > 0)) return;
    this.stalledUntil = Math.max(this.stalledUntil, this.clock.now()) + ms;
    this.stallTimer?.cancel();
    this.stallTimer = this.clock.setTimer(() => {
      this.stallTimer = null;
      this.pump();
    }, this.stalledUntil - this.clock.now());
  }

  /** The device restarted (reboot, power loss): whatever the task was doing is gone. */
  reset(): void {
    this.generation++;
    this.tasks.length = 0;
    this.running = false;
    this.stallTimer?.cancel();
    this.stallTimer = null;
    this.stalledUntil = 0;
    this.prepEntriesUsed = 0;
  }

  /** Takes one prepare-write entry from the pool; false when the pool is empty. */
  takePrepEntry(): boolean {
    if (this.prepEntriesUsed >= this.prepEntries) return false;
    this.prepEntriesUsed++;
    return true;
  }

  releasePrepEntries(count: number): void {
    this.prepEntriesUsed = Math.max(0, this.prepEntriesUsed - count);
  }

  private pump(): void {
    if (this.inTask) return;
    while (!this.running && this.tasks.length > 0) {
      if (this.clock.now() < this.stalledUntil) return; // the stall timer pumps again
      const task = this.tasks.shift() as Task;
      let result: void | Promise<void>;
      const generation = this.generation;
      this.inTask = true;
      try {
        result = task.run();
      } catch {
        result = undefined; // a handler bug must not stop the host; the server reports its own errors
      } finally {
        this.inTask = false;
      }
      // The device restarted inside the callback (the seed's esp_restart): the callback never returns and
      // the host of the new boot starts idle.
      if (generation !== this.generation) continue;
      if (result && typeof (result as Promise<void>).then === 'function') {
        this.running = true;
        const done = () => {
          if (generation !== this.generation) return;
          this.running = false;
          this.pump();
        };
        (result as Promise<void>).then(done, done);
        return;
      }
    }
  }
}
