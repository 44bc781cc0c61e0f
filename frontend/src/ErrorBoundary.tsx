// Catches render errors below it: reports each and shows a way back instead of a blank page.
import { Component, type ErrorInfo, type ReactNode } from 'react';

import { reportError } from './telemetry';

interface Props {
  children: ReactNode;
}

interface State {
  failed: boolean;
  /** The report's trace id, shown as a reference for a support request. */
  reference?: string;
}

export class ErrorBoundary extends Component<Props, State> {
  override state: State = { failed: false };

  static getDerivedStateFromError(): State {
    return { failed: true };
  }

  override componentDidCatch(error: unknown, _info: ErrorInfo): void {
    this.setState({ reference: reportError(error, 'error-boundary') });
  }

  override render(): ReactNode {
    if (!this.state.failed) return this.props.children;
    return (
      <div className="fallback" data-testid="error-fallback" role="alert">
        <h2>Something went wrong.</h2>
        <p>The error has been reported. Reloading the page usually helps.</p>
        {this.state.reference && (
          <p className="muted">
            Reference: <code data-testid="error-reference">{this.state.reference}</code>
          </p>
        )}
        <button type="button" data-testid="reload" onClick={() => location.reload()}>
          Reload
        </button>
      </div>
    );
  }
}
