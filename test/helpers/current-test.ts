/** Mocha root hook (npm run test:js requires it): tells paths.ts which test runs, so a missing vector skips it. */
import { setCurrentTest } from './paths';

export const mochaHooks = {
  beforeEach(this: Mocha.Context): void {
    setCurrentTest(this.currentTest);
  },
  afterEach(): void {
    setCurrentTest(undefined);
  },
};
