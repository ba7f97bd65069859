<%--
  Counts requests in the HTTP session: node, session id, counter and whether the session
  is new. session.jsp?invalidate=1 ends the session instead.
--%>
<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %>
<%
    out.print("node=" + System.getProperty("pyhttpd.node") + "\n");
    if ("1".equals(request.getParameter("invalidate"))) {
        out.print("invalidated=" + session.getId() + "\n");
        session.invalidate();
        return;
    }
    Integer counter = (Integer) session.getAttribute("counter");
    counter = counter == null ? 1 : counter + 1;
    session.setAttribute("counter", counter);
    out.print("session=" + session.getId() + "\n");
    out.print("counter=" + counter + "\n");
    out.print("new=" + session.isNew() + "\n");
%>
