// The one error type the API throws: a kind the page can act on, and a message a visitor can read.

/** @typedef {import('./protocol.js').ErrorKind} ErrorKind */

export class KinemaError extends Error {
  /**
   * @param {ErrorKind} kind
   * @param {string} message  a sentence for the visitor, saying what happened and what to do
   * @param {{cause?: unknown, retryable?: boolean}} [options]
   */
  constructor(kind, message, { cause, retryable = false } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'KinemaError';
    this.kind = kind;
    this.retryable = retryable;
  }
}

/** True for the error a fetch or our own code throws when an AbortSignal fires. */
export const isAbort = (err) => err?.name === 'AbortError';

/** An AbortError, the same kind fetch throws, for our own cancellation points. */
export const abortError = () => new DOMException('The operation was cancelled.', 'AbortError');
