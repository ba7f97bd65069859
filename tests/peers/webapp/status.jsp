<%-- status.jsp?code=N answers with status N and a short text body. --%>
<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" session="false" %>
<%
    int code = Integer.parseInt(request.getParameter("code"));
    response.setStatus(code);
    out.print("status=" + code + "\n");
%>
